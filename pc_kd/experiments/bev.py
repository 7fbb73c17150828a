"""BEV detection experiments on synthetic driving (what ``tools/demo_bev.py`` runs): detectors and cross-modal
distillation paths trained by the Runner per seed (a finished run is reused while its config and pc_kd's training
code are unchanged), scored with the nuScenes metric on the validation frames and on held-out ones, against the
floor (random boxes) and ceiling (the GT boxes) of the same metric; paired distillation tables (each path against
its student's baseline of the same seed), step-time shares and pictures.

A detector is named by its config (``{name: config path}``); a distillation path by ``(config, student name,
teacher name, BEVDistiller arguments replacing the config's or None)``: :func:`run_experiment` takes both tables.
"""
import copy
import json
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log

from pc_kd.experiments.common import mean_std, seeded_config, train_or_reuse, write_run_record

__all__ = ["METRICS", "distiller_options", "run_config", "heldout_loader", "heldout_scores", "train_and_test",
           "first_train_batch", "distill_step_shares", "distill_picture", "bev_pool_share", "reference_rows",
           "pictures", "distill_table", "detector_table", "run_experiment", "print_report"]

METRICS = ("mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "mAAE")


def distiller_options(arguments) -> dict:
    """A path's BEVDistiller arguments (or None) as ``--cfg-options`` keys of its config's ``model``."""
    return {f"model.{k}": v for k, v in (arguments or {}).items()}


def run_config(config, seed, work_dir, options, tag):
    """The config of one demo run: ``config`` with ``options``, ``seed``, its work folder, scored once."""
    cfg = seeded_config(config, options, seed, work_dir, f"demo_bev_{tag}")
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
    cfg = run_config(config, seed, work_dir, options, tag)
    runner, done, reused = train_or_reuse(cfg, config, f"{tag} seed {seed}")
    out = {k: done[k] for k in ("train_s", "final_depth_loss") if k in done}
    if not reused:
        scalars = runner.message_hub.log_scalars
        if "train/loss_depth" in scalars:
            out["final_depth_loss"] = float(scalars["train/loss_depth"].mean(20))
    start = time.perf_counter()
    metrics = runner.test()
    out.update({k: float(metrics[f"nuscenes/{k}"]) for k in METRICS}, test_s=time.perf_counter() - start,
               iters=cfg.train_cfg.max_iters, batch_size=cfg.train_dataloader.batch_size)
    if heldout_frames:
        out["heldout"] = heldout_scores(runner, heldout_frames)
    write_run_record(cfg, out)
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


def distill_picture(path: str, runner, baseline_config, baseline_ckpt, work_dir, student: str, teacher: str):
    """``distill_<path>.png``: heatmaps (max over tasks and classes) and ``bev_low`` magnitudes (mean |f| over
    channels) of the teacher, the student's baseline and the distilled student on the first validation frame,
    the GT boxes' 9 keypoints marked; ``baseline_config`` / ``baseline_ckpt``: the student's baseline detector,
    ``student`` / ``teacher``: the detectors' names in the titles."""
    from pc_kd.engine import bare_model, load_local_checkpoint
    from pc_kd.models.losses.bev_distill import box_keypoints
    from pc_kd.registry import DATASETS, MODELS
    from pc_kd.visualization import plot_bev_maps

    distiller = bare_model(runner.model).eval()
    baseline = MODELS.build(Config.fromfile(baseline_config).model)
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
                                 bev_range=getattr(getattr(runner.model, "head", None), "pc_range", None),
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


def _scores(run, frames: str) -> dict:
    """A run's scores on the validation frames (``frames`` "val") or on the held-out ones ("heldout")."""
    return run if frames == "val" else run["heldout"]


def distill_table(per_path, per_detector, pairs: Mapping[str, Tuple[str, str]], frames="val"):
    """Each path's scores beside its student's baseline of the same seeds: the paired mAP difference (mean +-
    std over seeds) and the number of seeds where the distilled student scored higher; ``pairs``: each path's
    (student, teacher) detector names."""
    cols = ("mAP", "NDS", "mATE", "mAOE", "mAVE")
    lines = ["| path (student <- teacher) | " + " | ".join(cols) + " | mAP - baseline (paired) | better seeds | "
             "teacher / losses share of a step | train s |", "|---" * (len(cols) + 5) + "|"]
    for path, runs in per_path.items():
        student, teacher = pairs[path]
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


def detector_table(per_detector, reference, num_frames, frames="val"):
    """Each detector's scores (mean +- std over seeds) and the reference rows, on ``frames`` ("val" / "heldout")."""
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


def run_experiment(detectors: Mapping[str, object], paths: Mapping[str, tuple], seeds: Sequence[int], work_dir,
                   options: Optional[dict] = None, heldout_frames: int = 128) -> dict:
    """Train and score every detector of ``detectors`` (``{name: config}``) and then every distillation path of
    ``paths`` (``{path: (config, student, teacher, arguments)}``; each seed's teacher is the detector of that seed
    trained here) for every seed, in ``work_dir/<name>_seed<seed>``; ``options``: ``--cfg-options`` of every run.
    Returns ``dict(detectors={name: [run]}, distillation={path: [run]}, reference={frames: rows}, pairs, files,
    num_frames, val_frames)``, each run the dict of :func:`train_and_test` with its ``seed``."""
    work, options = Path(work_dir), dict(options or {})
    per_detector, per_path, extras, files = {}, {}, {}, []
    for name, config in detectors.items():
        per_detector[name] = []
        for seed in seeds:
            runner, out = train_and_test(config, seed, work / f"{name}_seed{seed}", options, name, heldout_frames)
            out["seed"] = seed
            if name == "camera" and seed == seeds[0]:
                out["bev_pool_share"] = bev_pool_share(runner)
            per_detector[name].append(out)
            print_log(f"{name} seed {seed}: " + ", ".join(f"{k} {v:.4g}" for k, v in out.items()
                                                          if isinstance(v, (int, float))), "current")
            if seed == seeds[0]:
                files += pictures(name, runner, work)
                dataset = runner.test_dataloader.dataset
                if heldout_frames:
                    from pc_kd.registry import DATASETS

                    heldout = DATASETS.build(heldout_loader(runner.cfg, heldout_frames)["dataset"])
                extras["classes"] = runner.cfg.test_evaluator["classes"]
                extras["class_range"] = runner.cfg.test_evaluator["class_range"]
    for path, (config, student, teacher, arguments) in paths.items():
        per_path[path] = []
        for seed in seeds:
            teacher_run = per_detector[teacher][list(seeds).index(seed)]
            run_options = dict(options)
            run_options["model.teacher_ckpt"] = str(work / f"{teacher}_seed{seed}" / f"iter_{teacher_run['iters']}.pth")
            run_options.update(distiller_options(arguments))
            runner, out = train_and_test(config, seed, work / f"{path}_seed{seed}", run_options, path, heldout_frames)
            out["seed"] = seed
            if seed == seeds[0]:
                out["shares"] = distill_step_shares(runner)
                baseline = per_detector[student][0]
                files.append(distill_picture(path, runner, detectors[student], work / f"{student}_seed{seed}" /
                                             f"iter_{baseline['iters']}.pth", work, student, teacher))
            per_path[path].append(out)
            print_log(f"{path} seed {seed}: " + ", ".join(f"{k} {v:.4g}" for k, v in out.items()
                                                          if isinstance(v, float)), "current")
    reference = {"val": reference_rows(dataset, extras["classes"], extras["class_range"])}
    if heldout_frames:
        reference["heldout"] = reference_rows(heldout, extras["classes"], extras["class_range"])
    return dict(detectors=per_detector, distillation=per_path, reference=reference, files=files,
                pairs={p: (v[1], v[2]) for p, v in paths.items()}, val_frames=len(dataset),
                heldout_frames=heldout_frames)


def print_report(result: dict, work_dir) -> Path:
    """Print the detector and distillation tables (validation, then held-out frames), the camera detector's depth
    loss and ``bev_pool`` share, the metric's time and the pictures; write every number to
    ``work_dir/results.json``."""
    from pc_kd.utils.io import atomic_write

    per_detector, per_path, reference = result["detectors"], result["distillation"], result["reference"]
    for frames, num_frames in (("val", result["val_frames"]), ("heldout", result["heldout_frames"])):
        if frames not in reference:
            continue
        print("\n" + detector_table(per_detector, reference[frames], num_frames, frames))
        if per_path:
            print(f"\nUniDistill paths on the same {num_frames} frames, each against its student's baseline of the "
                  "same seeds:\n" + distill_table(per_path, per_detector, result["pairs"], frames))
    for name, runs in per_detector.items():
        if "final_depth_loss" in runs[0]:
            print(f"{name}: final depth loss {np.mean([r['final_depth_loss'] for r in runs]):.3f}"
                  + (f", bev_pool share of a training step {runs[0]['bev_pool_share'] * 100:.1f} %"
                     if "bev_pool_share" in runs[0] else ""))
        print(f"{name}: metric on {result['val_frames']} frames took {np.mean([r['test_s'] for r in runs]):.1f} s "
              f"with the test loop (inference included)")
    print("pictures: " + ", ".join(str(f) for f in result["files"]))
    out = Path(work_dir) / "results.json"
    with atomic_write(out) as tmp:
        Path(tmp).write_text(json.dumps(dict(detectors=per_detector, reference=reference, distillation=per_path),
                                        indent=1))
    return out
