"""BEV detection and cross-modal BEV distillation on synthetic driving scenes, end to end: generate 64 + 64 key
frames and 128 held-out ones (cached), train the LiDAR (also with a motion cue), camera and fusion detectors by the
Runner, distil them into each other (UniDistill's paths), score every model with the nuScenes metric, print the
tables, draw pictures.

    python tools/demo_bev.py [--work-dir work_dirs/demo_bev] [--seeds 0 1 2]
        [--detectors lidar lidar_motion camera fusion]
        [--distill lidar_to_camera fusion_to_camera camera_to_lidar fusion_to_lidar ...] [--heldout-frames 128]
        [--cfg-options k=v ...]

Rows: the four detectors (mean +- std over seeds; ``lidar_motion`` is the LiDAR one whose head also reads
:class:`SweepMotion`'s velocity estimate), and two rows that need no training, scored the same way: a
floor (random boxes: uniform positions, class-mean sizes) and a ceiling (the GT boxes themselves). Also
reported: training and metric seconds, the camera detector's final depth loss and the share of its training
step spent in ``bev_pool``. Pictures of the first validation frame (first seed): ``bev_<detector>.png`` (GT vs
predictions over the LiDAR points), ``cameras_<detector>.png`` (predictions in the six images) and
``render_<detector>.png`` (open3d, when installed). A JSON of every number goes to ``results.json``.

Held-out frames (``--heldout-frames``, 128 by default): every run is also scored on frames of the synthetic split
"test", which no run trains on and no setting (temperature, weights) was chosen on; the tables are printed for the
validation frames and again for the held-out ones.

Distillation (``--distill``): each path trains its student config from ``configs/unidistill`` with the teacher
detector of the same seed (trained first, in this run) and is compared with the student's baseline of the same
seed: same initial weights, same data order, so the difference per seed is the distillation's. Extra paths:
``lidar_to_camera_feature`` / ``lidar_to_camera_feature_relation`` / ``lidar_to_camera_response`` (the ablation of
UniDistill's terms), ``lidar_to_camera_fc_weights`` (the three terms at UniDistill's fusion -> camera weights
10 / 5 / 10), ``lidar_to_camera_dense`` / ``lidar_to_camera_crosskd`` (the two options on UniDistill's
weights) and ``lidar_to_camera_response_dense`` / ``lidar_to_camera_response_crosskd`` (each option beside the
response term alone); ``fusion_to_lidar_{feature,relation,response}`` (each term alone; the response term at
UniDistill's temperature 2), ``fusion_to_lidar_t2`` (the three terms, the teacher's heatmap at temperature 2 instead
of the config's 1; ``camera_to_lidar_t2`` the same for camera -> LiDAR), ``fusion_to_lidar_response_t1`` (at
temperature 1 instead of 2) and
two controls, ``fusion_to_lidar_zero`` (every weight 0: reproduces the LiDAR baseline) and
``fusion_to_lidar_null_{feature,response}`` (a weight of 1e-6: the spread of an undistilled run). Reported per
path: the scores, the paired mAP difference, the seeds it helped, and for the first seed the share of a training
step spent in the teacher and in the distillation losses, and ``distill_<path>.png`` (teacher, baseline and
distilled heatmaps and BEV features, box keypoints marked).

Every run keeps its work folder; a rerun reuses a run whose final checkpoint and ``run.json`` exist and whose
config is unchanged (only scoring it again), so an interrupted demo resumes where it stopped.
"""
import argparse
import copy
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log

from pc_kd.engine.config_checks import ConfigOptionsAction

ROOT = Path(__file__).resolve().parents[1] / "configs" / "supervised"
DETECTORS = {"lidar": ROOT / "supervised_centerpoint-pillar_none_synthetic-driving.py",
             "lidar_motion": ROOT / "supervised_centerpoint-pillar-motion_none_synthetic-driving.py",
             "camera": ROOT / "supervised_lss-camera_none_synthetic-driving.py",
             "fusion": ROOT / "supervised_bevfusion_none_synthetic-driving.py"}
UNIDISTILL = ROOT.parent / "unidistill"
_L2C = UNIDISTILL / "unidistill_lss-camera_centerpoint-pillar_synthetic-driving.py"
_C2L = UNIDISTILL / "unidistill_centerpoint-pillar_lss-camera_synthetic-driving.py"
_F2L = UNIDISTILL / "unidistill_centerpoint-pillar_bevfusion_synthetic-driving.py"


# path: (config, student detector, teacher detector, BEVDistiller arguments replacing the config's, or None)
DISTILL = {
    "lidar_to_camera": (_L2C, "camera", "lidar", None),
    "fusion_to_camera": (UNIDISTILL / "unidistill_lss-camera_bevfusion_synthetic-driving.py", "camera", "fusion", None),
    "camera_to_lidar": (_C2L, "lidar", "camera", None),
    "fusion_to_lidar": (_F2L, "lidar", "fusion", None),
    "lidar_to_camera_feature": (_L2C, "camera", "lidar", dict(weights=dict(feature=100.0, relation=0.0, response=0.0))),
    "lidar_to_camera_feature_relation": (
        _L2C, "camera", "lidar", dict(weights=dict(feature=100.0, relation=40.0, response=0.0))),
    # UniDistill's three terms at its fusion -> camera weights (the keypoint feature term 10x lighter)
    "lidar_to_camera_fc_weights": (
        _L2C, "camera", "lidar", dict(weights=dict(feature=10.0, relation=5.0, response=10.0))),
    "lidar_to_camera_response": (UNIDISTILL / "unidistill-response_lss-camera_centerpoint-pillar_synthetic-driving.py",
                                 "camera", "lidar", None),
    "lidar_to_camera_dense": (UNIDISTILL / "unidistill-dense_lss-camera_centerpoint-pillar_synthetic-driving.py",
                              "camera", "lidar", None),
    "lidar_to_camera_crosskd": (UNIDISTILL / "unidistill-crosskd_lss-camera_centerpoint-pillar_synthetic-driving.py",
                                "camera", "lidar", None),
    # the two options on top of the response term alone (without UniDistill's keypoint feature and relation terms)
    "lidar_to_camera_response_dense": (
        UNIDISTILL / "unidistill-dense_lss-camera_centerpoint-pillar_synthetic-driving.py", "camera", "lidar",
        dict(weights=dict(feature=0.0, relation=0.0, response=10.0, dense=0.1))),
    "lidar_to_camera_response_crosskd": (
        UNIDISTILL / "unidistill-crosskd_lss-camera_centerpoint-pillar_synthetic-driving.py", "camera", "lidar",
        dict(weights=dict(feature=0.0, relation=0.0, response=10.0, crosskd=10.0))),
    # fusion -> LiDAR: each term alone at the config's weight, the teacher's heatmap at UniDistill's temperature 2
    # (the three terms; the response term alone) or at 1 (the config's), and two controls: every weight 0 (must
    # reproduce the LiDAR baseline) and a weight of 1e-6 (the objective unchanged, the float sums not: the spread
    # of an undistilled run)
    "fusion_to_lidar_feature": (_F2L, "lidar", "fusion", dict(weights=dict(feature=10.0, relation=0.0, response=0.0))),
    "fusion_to_lidar_relation": (_F2L, "lidar", "fusion", dict(weights=dict(feature=0.0, relation=1.0, response=0.0))),
    "fusion_to_lidar_response": (
        _F2L, "lidar", "fusion", dict(weights=dict(feature=0.0, relation=0.0, response=10.0), t_temp=2.0)),
    "fusion_to_lidar_response_t1": (
        _F2L, "lidar", "fusion", dict(weights=dict(feature=0.0, relation=0.0, response=10.0), t_temp=1.0)),
    "fusion_to_lidar_t2": (_F2L, "lidar", "fusion", dict(t_temp=2.0)),
    "camera_to_lidar_t2": (_C2L, "lidar", "camera", dict(t_temp=2.0)),
    "fusion_to_lidar_zero": (_F2L, "lidar", "fusion", dict(weights=dict(feature=0.0, relation=0.0, response=0.0))),
    "fusion_to_lidar_null_feature": (
        _F2L, "lidar", "fusion", dict(weights=dict(feature=1e-6, relation=0.0, response=0.0))),
    "fusion_to_lidar_null_response": (
        _F2L, "lidar", "fusion", dict(weights=dict(feature=0.0, relation=0.0, response=1e-6), t_temp=2.0)),
}
METRICS = ("mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "mAAE")


def distiller_options(arguments) -> dict:
    """A path's BEVDistiller arguments (or None) as ``--cfg-options`` keys of its config's ``model``."""
    return {f"model.{k}": v for k, v in (arguments or {}).items()}


def _fingerprint(cfg) -> str:
    """Hash of what decides a run's result (model, data, schedule, seed), not of where it is written."""
    keep = {k: cfg.get(k) for k in ("model", "train_dataloader", "optim_wrapper", "param_scheduler", "train_cfg",
                                    "randomness")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_config(config, seed, work_dir, options, tag):
    """The config of one demo run: ``config`` with ``options``, ``seed``, its work folder, scored once."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    cfg.work_dir, cfg.randomness = str(work_dir), dict(seed=seed, deterministic=False)
    cfg.experiment_name = f"demo_bev_{tag}_seed{seed}"  # one logger per run in this process
    cfg.train_cfg.val_interval = cfg.train_cfg.max_iters + 1  # scored once, by runner.test()
    return cfg


def heldout_loader(cfg, num_frames):
    """``cfg``'s test dataloader on ``num_frames`` held-out frames (the synthetic split "test": frames neither trained
    on nor used to choose a setting)."""
    loader = copy.deepcopy(cfg.test_dataloader)
    loader["dataset"].update(split="test", num_samples=num_frames)
    return loader


def heldout_scores(runner, num_frames) -> dict:
    """The run's scores on ``num_frames`` held-out frames, by its config's test pipeline and evaluator."""
    from mmengine.runner import TestLoop

    loop = TestLoop(runner, heldout_loader(runner.cfg, num_frames), copy.deepcopy(runner.cfg.test_evaluator))
    metrics = loop.run()
    return {k: float(metrics[f"nuscenes/{k}"]) for k in METRICS}


def train_and_test(config, seed, work_dir, options, tag, heldout_frames=0):
    """Train ``config`` with ``seed`` by the Runner (or reuse the finished run in ``work_dir``); return its runner
    and test metrics (+ timings; ``heldout``: the scores on ``heldout_frames`` held-out frames, when > 0)."""
    from pc_kd.engine import build_runner
    from pc_kd.utils.io import atomic_write

    cfg = run_config(config, seed, work_dir, options, tag)
    record, ckpt = Path(work_dir) / "run.json", Path(work_dir) / f"iter_{cfg.train_cfg.max_iters}.pth"
    fingerprint = _fingerprint(cfg)
    done = json.loads(record.read_text()) if record.exists() else {}
    out = {}
    if ckpt.exists() and done.get("fingerprint") == fingerprint:
        cfg.load_from = str(ckpt)
        runner = build_runner(cfg, str(config))
        print_log(f"{tag} seed {seed}: reusing the finished run {ckpt} (delete {record} to train again)", "current")
        out.update({k: done[k] for k in ("train_s", "final_depth_loss") if k in done})
    else:
        runner = build_runner(cfg, str(config))
        start = time.perf_counter()
        runner.train()
        out["train_s"] = time.perf_counter() - start
        scalars = runner.message_hub.log_scalars
        if "train/loss_depth" in scalars:
            out["final_depth_loss"] = float(scalars["train/loss_depth"].mean(20))
    start = time.perf_counter()
    metrics = runner.test()
    out.update({k: float(metrics[f"nuscenes/{k}"]) for k in METRICS}, test_s=time.perf_counter() - start,
               iters=cfg.train_cfg.max_iters, batch_size=cfg.train_dataloader.batch_size)
    if heldout_frames:
        out["heldout"] = heldout_scores(runner, heldout_frames)
    with atomic_write(record) as tmp:
        Path(tmp).write_text(json.dumps(dict(out, fingerprint=fingerprint), indent=1))
    return runner, out


def first_train_batch(runner):
    """One training batch: the first ``batch_size`` frames of the training set, augmented and collated as the
    loader does. (``next(iter(runner.train_dataloader))`` gives a batch only once per runner: the loader's
    InfiniteSampler keeps one generator, which the first iterator closes.)"""
    loader = runner.train_dataloader
    return loader.collate_fn([loader.dataset[i] for i in range(min(loader.batch_size, len(loader.dataset)))])


def distill_step_shares(runner, steps=3):
    """Shares of a distillation training step (forward + backward, one batch, median of ``steps`` after a
    warm-up) spent in the teacher's forward and in the distillation losses (timed directly: their forward and
    backward down to the two detectors' outputs, :meth:`BEVDistiller.step_parts`)."""
    from pc_kd.engine import bare_model

    model = bare_model(runner.model).train()
    data = model.data_preprocessor(first_train_batch(runner), True)
    times = {}
    parts = model.step_parts(data["inputs"], data["data_samples"])
    for name in ("teacher", "full", "losses"):  # the student's own step is not reported
        fn = parts[name]
        runs = []
        for _ in range(steps + 1):
            start = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - start)
        times[name] = float(np.median(runs[1:]))
    model.zero_grad(set_to_none=True)
    full = times["full"]
    return dict(step_s=full, teacher_share=times["teacher"] / full, losses_share=times["losses"] / full)


def distill_picture(path, runner, baseline_ckpt, work_dir):
    """``distill_<path>.png``: heatmaps (max over tasks and classes) and ``bev_low`` magnitudes (mean |f| over
    channels) of the teacher, the student's baseline and the distilled student on the first validation frame,
    the GT boxes' 9 keypoints marked."""
    from pc_kd.engine import bare_model, load_local_checkpoint
    from pc_kd.models.losses.bev_distill import box_keypoints
    from pc_kd.registry import DATASETS, MODELS
    from pc_kd.visualization import plot_bev_maps

    distiller = bare_model(runner.model).eval()
    baseline = MODELS.build(Config.fromfile(DETECTORS[DISTILL[path][1]]).model)
    baseline.load_state_dict(load_local_checkpoint(baseline_ckpt)["state_dict"])
    baseline.eval()
    frames = runner.cfg.test_dataloader.dataset.copy()
    frames.pipeline = runner.cfg.camera_test_pipeline  # points and images: what either detector reads
    batch = runner.test_dataloader.collate_fn([DATASETS.build(frames)[0]])
    data = distiller.data_preprocessor(batch, False)
    heat, mag = [], []
    with torch.no_grad():
        for model in (distiller.teacher, baseline, distiller.student):
            out = model.extract(data["inputs"])
            heat.append(torch.stack([torch.sigmoid(t["heatmap"][0]).amax(0) for t in out["head"]]).amax(0).numpy())
            mag.append(out["bev_low"][0].abs().mean(0).numpy())
    boxes = data["data_samples"][0].gt_instances_3d.bboxes_3d.tensor
    x0, y0, _, x1, y1, _ = distiller.student.head.pc_range
    teacher, student = DISTILL[path][2], DISTILL[path][1]
    names = [f"teacher ({teacher})", f"{student} baseline", f"{student} distilled ({path})"]
    return plot_bev_maps([heat, mag], [[f"heatmap: {n}" for n in names], [f"|bev_low|: {n}" for n in names]],
                         (x0, x1, y0, y1), Path(work_dir) / f"distill_{path}.png",
                         keypoints=box_keypoints(boxes.float()).numpy())


class _Mark(torch.autograd.Function):
    """Identity whose backward records the time it runs (brackets bev_pool's backward)."""

    @staticmethod
    def forward(ctx, x, stamps, key):
        ctx.stamps, ctx.key = stamps, key
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        ctx.stamps.setdefault(ctx.key, time.perf_counter())
        return grad, None, None


def bev_pool_share(runner, steps=3):
    """Share of a camera training step (forward + backward) spent in ``bev_pool`` (its forward and backward),
    median over ``steps`` steps on one batch."""
    from pc_kd.engine import bare_model
    from pc_kd.models.backbones import camera_bev

    model = bare_model(runner.model).train()
    batch = first_train_batch(runner)
    original, shares = camera_bev.bev_pool, []
    for _ in range(steps + 1):  # the first is a warm-up
        stamps, forward_s = {}, []

        def timed(depth, context, *args, **kwargs):
            depth, context = _Mark.apply(depth, stamps, "end"), _Mark.apply(context, stamps, "end")
            start = time.perf_counter()
            out = original(depth, context, *args, **kwargs)
            forward_s.append(time.perf_counter() - start)
            return _Mark.apply(out, stamps, "start")

        camera_bev.bev_pool = timed
        try:
            start = time.perf_counter()
            data = model.data_preprocessor(batch, True)
            sum(model(**data, mode="loss").values()).backward()
            step = time.perf_counter() - start
        finally:
            camera_bev.bev_pool = original
        model.zero_grad()
        shares.append((sum(forward_s) + stamps["end"] - stamps["start"]) / step)
    return float(np.median(shares[1:]))


def reference_rows(dataset, classes, class_range, seed=0):
    """Scores of random boxes (a floor) and of the GT boxes themselves (the ceiling) with the same metric."""
    from pc_kd.evaluation import nuscenes_detection_scores
    from pc_kd.evaluation.nuscenes_det import attribute_names, lidar_boxes_to_results
    from pc_kd.structures import Boxes3D

    rng = np.random.default_rng(seed)
    gts, rand, ceiling = {}, {}, {}
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    all_boxes = np.concatenate([np.array([inst["bbox_3d"] for inst in info["instances"]]) for info in infos])
    all_labels = np.concatenate([np.array([inst["bbox_label_3d"] for inst in info["instances"]]) for info in infos])
    mean_size = {c: all_boxes[all_labels == c, 3:6].mean(0) for c in np.unique(all_labels)}
    for info in infos:
        token = info["token"]
        boxes = np.array([inst["bbox_3d"] + list(inst["velocity"]) for inst in info["instances"]])
        labels = np.array([inst["bbox_label_3d"] for inst in info["instances"]])
        names = attribute_names([inst.get("attr_label", -1) for inst in info["instances"]])
        args = (info["lidar2ego"], info["ego2global"])
        gts[token] = lidar_boxes_to_results(token, Boxes3D(boxes), labels, dataset.metainfo["classes"], *args,
                                            num_pts=[inst["num_lidar_pts"] for inst in info["instances"]],
                                            attributes=names)
        seen = np.array([inst["num_lidar_pts"] > 0 for inst in info["instances"]], bool)  # no point: not scored
        ceiling[token] = lidar_boxes_to_results(token, Boxes3D(boxes[seen]), labels[seen], dataset.metainfo["classes"],
                                                *args, scores=np.linspace(1, 0.5, int(seen.sum())))
        n = 50
        lab = rng.choice(list(mean_size), n)
        rb = np.concatenate([rng.uniform(-32, 32, (n, 2)), np.full((n, 1), -1.0), np.stack([mean_size[c] for c in lab]),
                             rng.uniform(-np.pi, np.pi, (n, 1)), np.zeros((n, 2))], 1)
        rand[token] = lidar_boxes_to_results(token, Boxes3D(rb), lab, dataset.metainfo["classes"], *args,
                                             scores=rng.uniform(0, 1, n))
    rows = {}
    for key, preds in (("random", rand), ("ground truth", ceiling)):
        s = nuscenes_detection_scores(gts, preds, classes, class_range)
        rows[key] = {k: float(s[k]) for k in METRICS}
    return rows


def pictures(name, runner, work_dir):
    """BEV, camera and open3d pictures of the first validation frame."""
    from pc_kd.engine import predict_first_test_sample
    from pc_kd.visualization import draw_camera_detections, plot_bev_detections

    batch, sample = predict_first_test_sample(runner)
    dataset = runner.test_dataloader.dataset
    points = batch["inputs"]["points"][0].numpy()
    classes = dataset.metainfo["classes"]
    gt, pred = sample.gt_instances_3d, sample.pred_instances_3d
    files = [plot_bev_detections(points, gt.bboxes_3d, gt.labels_3d.numpy(), pred.bboxes_3d, pred.labels_3d.numpy(),
                                 pred.scores_3d.numpy(), classes, Path(work_dir) / f"bev_{name}.png",
                                 title=f"{name} detector: ground truth (dashed) vs predictions")]
    if "imgs" in batch["inputs"]:
        imgs = batch["inputs"]["imgs"][0].permute(0, 2, 3, 1).numpy()
        files.append(draw_camera_detections(list(imgs), np.asarray(sample.lidar2img), pred.bboxes_3d,
                                            pred.labels_3d.numpy(), pred.scores_3d.numpy(), classes,
                                            Path(work_dir) / f"cameras_{name}.png", cam_names=sample.cam_names,
                                            gt_boxes=gt.bboxes_3d, gt_labels=gt.labels_3d.numpy(),
                                            title=f"{name} detector: ground truth (dashed) and predictions"))
    try:
        from pc_kd.visualization import render_points

        keep = pred.scores_3d.numpy() >= 0.3
        near = points[(np.abs(points[:, :2]) < 32).all(1), :3]  # the BEV grid's extent
        colours = np.tile([[0.45, 0.45, 0.45]], (len(near), 1))
        files.append(render_points(near, colours, Path(work_dir) / f"render_{name}.png", view="iso",
                                   point_size=2.0, boxes=[(gt.bboxes_3d.corners().numpy(), (0.1, 0.1, 0.1)),
                                                          (pred.bboxes_3d[np.flatnonzero(keep).tolist()].corners()
                                                           .numpy() if keep.any() else np.zeros((0, 8, 3)),
                                                           (0.9, 0.1, 0.1))]))
    except ImportError as err:
        print_log(f"no open3d render: {err}", "current")
    return files


def mean_std(values, sign: str = "") -> str:
    """``mean +- std`` of a row's values over seeds (the mean alone for one seed), 3 decimals."""
    v = np.asarray(values, dtype=float)
    return f"{v.mean():{sign}.3f}" + (f" +- {v.std():.3f}" if len(v) > 1 else "")


def _scores(run, frames: str) -> dict:
    """A run's scores on the validation frames (``frames`` "val") or on the held-out ones ("heldout")."""
    return run if frames == "val" else run["heldout"]


def distill_table(per_path, per_detector, frames="val"):
    """Each path's scores beside its student's baseline of the same seeds: the paired mAP difference (mean +-
    std over seeds) and the number of seeds where the distilled student scored higher."""
    cols = ("mAP", "NDS", "mATE", "mAOE", "mAVE")
    lines = ["| path (student <- teacher) | " + " | ".join(cols) + " | mAP - baseline (paired) | better seeds | "
             "teacher / losses share of a step | train s |", "|---" * (len(cols) + 5) + "|"]
    for path, runs in per_path.items():
        student, teacher = DISTILL[path][1], DISTILL[path][2]
        base = {r["seed"]: r for r in per_detector[student]}
        diff = np.array([_scores(r, frames)["mAP"] - _scores(base[r["seed"]], frames)["mAP"] for r in runs])
        cells = [mean_std([_scores(r, frames)[m] for r in runs]) for m in cols]
        share = runs[0].get("shares")
        lines.append(f"| {path} ({student} <- {teacher}) | " + " | ".join(cells)
                     + f" | {mean_std(diff, '+')}"
                     + f" | {int((diff > 0).sum())} of {len(diff)} | "
                     + (f"{share['teacher_share'] * 100:.0f} % / {share['losses_share'] * 100:.1f} %" if share else "-")
                     + f" | {np.mean([r['train_s'] for r in runs]):.0f} |")
    return "\n".join(lines)


def table(per_detector, reference, num_frames, frames="val"):
    lines = [f"nuScenes detection scores on {num_frames} synthetic "
             + ("validation" if frames == "val" else "held-out test") + " frames (5 classes, 30 m), "
             + ("one seed" if len(next(iter(per_detector.values()))) == 1 else
                f"mean +- std over {len(next(iter(per_detector.values())))} seeds") + ":",
             "| detector | " + " | ".join(METRICS) + " | train s |", "|---" * (len(METRICS) + 2) + "|"]
    for name, runs in per_detector.items():
        cells = [mean_std([_scores(r, frames)[m] for r in runs]) for m in METRICS]
        cells.append(f"{np.mean([r['train_s'] for r in runs]):.0f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, row in reference.items():
        lines.append(f"| {name} boxes | " + " | ".join(f"{row[m]:.3f}" for m in METRICS) + " | - |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="work_dirs/demo_bev", help="where runs, tables and pictures go")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (table: mean +- std)")
    parser.add_argument("--detectors", nargs="+", choices=list(DETECTORS), default=list(DETECTORS),
                        help="detectors to train and score")
    parser.add_argument("--distill", nargs="+", choices=list(DISTILL), default=[],
                        help="distillation paths to train after the detectors (their students and teachers are "
                             "added to --detectors)")
    parser.add_argument("--cfg-options", nargs="+", action=ConfigOptionsAction, default={},
                        help="override entries of every detector config, e.g. train_cfg.max_iters=20")
    parser.add_argument("--heldout-frames", type=int, default=128,
                        help="also score every run on this many held-out frames (the synthetic split 'test', never "
                             "used to choose a setting; 0: none)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    work = Path(args.work_dir)
    detectors = [d for d in DETECTORS if d in args.detectors or any(d in DISTILL[p][1:3] for p in args.distill)]
    per_detector, per_path, extras, files = {}, {}, {}, []
    for name in detectors:
        per_detector[name] = []
        for seed in args.seeds:
            runner, out = train_and_test(DETECTORS[name], seed, work / f"{name}_seed{seed}", args.cfg_options, name,
                                         args.heldout_frames)
            out["seed"] = seed
            if name == "camera" and seed == args.seeds[0]:
                out["bev_pool_share"] = bev_pool_share(runner)
            per_detector[name].append(out)
            print_log(f"{name} seed {seed}: " + ", ".join(f"{k} {v:.4g}" for k, v in out.items()
                                                          if isinstance(v, (int, float))), "current")
            if seed == args.seeds[0]:
                files += pictures(name, runner, work)
                dataset = runner.test_dataloader.dataset
                if args.heldout_frames:
                    from pc_kd.registry import DATASETS

                    heldout = DATASETS.build(heldout_loader(runner.cfg, args.heldout_frames)["dataset"])
                extras["classes"] = runner.cfg.test_evaluator["classes"]
                extras["class_range"] = runner.cfg.test_evaluator["class_range"]
    for path in args.distill:
        config, student, teacher, arguments = DISTILL[path]
        per_path[path] = []
        for seed in args.seeds:
            teacher_run = per_detector[teacher][args.seeds.index(seed)]
            options = dict(args.cfg_options)
            options["model.teacher_ckpt"] = str(work / f"{teacher}_seed{seed}" / f"iter_{teacher_run['iters']}.pth")
            options.update(distiller_options(arguments))
            runner, out = train_and_test(config, seed, work / f"{path}_seed{seed}", options, path,
                                         args.heldout_frames)
            out["seed"] = seed
            if seed == args.seeds[0]:
                out["shares"] = distill_step_shares(runner)
                baseline = per_detector[student][0]
                files.append(distill_picture(path, runner, work / f"{student}_seed{seed}" /
                                             f"iter_{baseline['iters']}.pth", work))
            per_path[path].append(out)
            print_log(f"{path} seed {seed}: " + ", ".join(f"{k} {v:.4g}" for k, v in out.items()
                                                          if isinstance(v, float)), "current")
    reference = {"val": reference_rows(dataset, extras["classes"], extras["class_range"])}
    if args.heldout_frames:
        reference["heldout"] = reference_rows(heldout, extras["classes"], extras["class_range"])
    for frames, num_frames in (("val", len(dataset)), ("heldout", args.heldout_frames)):
        if frames not in reference:
            continue
        print("\n" + table(per_detector, reference[frames], num_frames, frames))
        if per_path:
            print(f"\nUniDistill paths on the same {num_frames} frames, each against its student's baseline of the "
                  "same seeds:\n" + distill_table(per_path, per_detector, frames))
    for name, runs in per_detector.items():
        if "final_depth_loss" in runs[0]:
            print(f"{name}: final depth loss {np.mean([r['final_depth_loss'] for r in runs]):.3f}"
                  + (f", bev_pool share of a training step {runs[0]['bev_pool_share'] * 100:.1f} %"
                     if "bev_pool_share" in runs[0] else ""))
        print(f"{name}: metric on {len(dataset)} frames took {np.mean([r['test_s'] for r in runs]):.1f} s with the "
              f"test loop (inference included)")
    print("pictures: " + ", ".join(str(f) for f in files))
    from pc_kd.utils.io import atomic_write

    out = work / "results.json"
    with atomic_write(out) as tmp:
        Path(tmp).write_text(json.dumps(dict(detectors=per_detector, reference=reference, distillation=per_path),
                                        indent=1))
    return per_detector, reference


if __name__ == "__main__":
    from pc_kd.engine import exit_on_user_error

    with exit_on_user_error():
        main()
