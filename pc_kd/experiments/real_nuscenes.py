"""Real nuScenes end to end (what ``tools/demo_real.py`` runs): two real scenes converted from the devkit's tables,
the LiDAR, camera and fusion detectors trained by the Runner on scene-0523 (Boston) and scored on scene-0916
(Singapore), the LiDAR detector also on the scene it trained on, beside random boxes (a floor) and the GT boxes (the
ceiling); every row scored by pc_kd's metric and by the devkit's own ``DetectionEval`` on a copy of the tables
restricted to the scored scene. For the camera path also the depth net's accuracy against LiDAR depth on
scene-0916, beside a baseline that predicts per image row the mean depth seen in training.

A finished run is reused while its config and pc_kd's training code are unchanged (:func:`train_or_reuse`).
"""
import copy
import json
from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log

from pc_kd.experiments import common
from pc_kd.experiments.common import seeded_config

__all__ = ["VERSION", "TRAIN_SCENE", "VAL_SCENE", "CONFIGS", "convert", "run_options", "train_or_reuse",
           "scene_loader", "predict_results", "reference_results", "score_both", "depth_scores", "pictures",
           "format_table", "select_on_train_scene", "select_depth_on_train_scene"]

VERSION = "v1.0-trainval"
TRAIN_SCENE, VAL_SCENE = "scene-0523", "scene-0916"
CONFIGS = dict(lidar="configs/supervised/supervised_centerpoint-pillar_none_nuscenes-2scenes.py",
               camera="configs/supervised/supervised_lss-camera_none_nuscenes-2scenes.py",
               fusion="configs/supervised/supervised_bevfusion_none_nuscenes-2scenes.py")
SPLITS = {"train": [TRAIN_SCENE], "val": [VAL_SCENE]}
PER_CLASS = ("car", "pedestrian", "barrier", "traffic_cone", "truck", "trailer", "bus", "motorcycle", "bicycle")


def convert(nuscenes_root, info_root) -> Dict[str, Path]:
    """Info files of the two scenes (train = scene-0523, val = scene-0916) under ``info_root``."""
    from pc_kd.datasets.converters import create_nuscenes_split_infos

    paths = create_nuscenes_split_infos(nuscenes_root, info_root, VERSION, split_scenes=SPLITS,
                                        log=lambda msg: print_log(msg, "current"))
    return dict(zip(SPLITS, paths))


def run_options(nuscenes_root, info_root, work_dir) -> dict:
    """``--cfg-options`` of a demo run: where the data and the info files are, where results go."""
    options = {}
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        options[f"{loader}.dataset.nuscenes_root"] = str(nuscenes_root)
        options[f"{loader}.dataset.data_root"] = str(info_root)
    for evaluator in ("val_evaluator", "test_evaluator"):
        options[f"{evaluator}.tables_root"] = str(nuscenes_root)
        options[f"{evaluator}.jsonfile_prefix"] = str(Path(work_dir) / "results")
    return options


def train_or_reuse(config, work_dir, options: Mapping, name: str, iters: Optional[int] = None):
    """Train ``config`` (seed 0) by the Runner into ``work_dir``, or reuse the finished run there
    (:func:`~pc_kd.experiments.common.train_or_reuse`); returns the runner (its model holding the trained weights)
    and ``{"train_s", "iters", "batch_size", "reused"}``. ``iters`` shortens the schedule (the config's schedule
    scaled to it)."""
    cfg = seeded_config(config, dict(options), 0, work_dir, f"demo_real_{name}")
    if iters is not None:
        scale_schedule(cfg, iters)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None  # scored by the demo afterwards
    runner, record = common.train_and_record(cfg, config, name)
    if record["reused"]:
        runner.call_hook("before_run")  # what runner.train() / test() do first (log paths), for the loops run here
    return runner, record


def scale_schedule(cfg, iters: int) -> None:
    """Shorten an iteration-based schedule to ``iters`` (warm-up and cosine ends scaled alike)."""
    old = cfg.train_cfg.max_iters
    cfg.train_cfg.max_iters = iters
    for sched in cfg.param_scheduler:
        for key in ("end", "T_max"):
            if key in sched:
                sched[key] = max(1, round(sched[key] * iters / old))


def scene_loader(cfg, split: str) -> dict:
    """``cfg``'s test dataloader on the info file of ``split`` (``train`` / ``val``)."""
    loader = copy.deepcopy(cfg.test_dataloader)
    loader["dataset"]["ann_file"] = f"nuscenes_infos_{split}.pkl"
    return loader


def predict_results(runner, split: str, out_json) -> Path:
    """The trained model's results JSON on the frames of ``split`` (written by the config's NuScenesDetMetric)."""
    from mmengine.runner import TestLoop

    evaluator = copy.deepcopy(runner.cfg.test_evaluator)
    evaluator["jsonfile_prefix"] = str(Path(out_json).parent / Path(out_json).stem)
    TestLoop(runner, scene_loader(runner.cfg, split), evaluator).run()
    written = Path(evaluator["jsonfile_prefix"]) / "results_nusc.json"
    written.replace(out_json)
    return Path(out_json)


def reference_results(nusc, scene: str, train_scene: str, out_dir, seed: int = 0) -> Dict[str, Path]:
    """Results JSONs of the floor and the ceiling on ``scene``: ``random`` (50 boxes per sample, uniform within
    51.2 m of the ego vehicle, classes drawn by their frequency in ``train_scene`` with that class's mean size
    there, random yaw and score) and ``ground truth`` (the tables' GT boxes that the metric scores, i.e. with LiDAR
    or radar points, with their own attribute and velocity, scores falling from 1 to 0.5)."""
    from pc_kd.evaluation.nuscenes_det import attribute_from_speed
    from pc_kd.evaluation.nuscenes_tables import gt_from_tables, scene_samples

    rng = np.random.default_rng(seed)
    train_gt, _, _ = gt_from_tables(nusc, scene_samples(nusc, [train_scene]))
    boxes = [b for per in train_gt.values() for b in per]
    names = sorted({b["detection_name"] for b in boxes})
    freq = np.array([sum(b["detection_name"] == n for b in boxes) for n in names], float)
    size = {n: np.mean([b["size"] for b in boxes if b["detection_name"] == n], 0) for n in names}
    gts, _, egos = gt_from_tables(nusc, scene_samples(nusc, [scene]))
    meta = dict(use_camera=False, use_lidar=True, use_radar=False, use_map=False, use_external=False)
    random, truth = {}, {}
    for token, per in gts.items():
        random[token] = []
        for _ in range(50):
            name = str(rng.choice(names, p=freq / freq.sum()))
            yaw = rng.uniform(-np.pi, np.pi)
            random[token].append(dict(
                sample_token=token, translation=(egos[token] + [*rng.uniform(-51.2, 51.2, 2), 0.0]).tolist(),
                size=size[name].tolist(), rotation=[float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))],
                velocity=[0.0, 0.0], detection_name=name, detection_score=float(rng.uniform()),
                attribute_name=attribute_from_speed(name, 0.0)))
        seen = [b for b in per if b["num_pts"] > 0]
        truth[token] = [dict({k: b[k] for k in ("sample_token", "translation", "size", "rotation",
                                                  "detection_name", "attribute_name")},
                             velocity=np.nan_to_num(np.asarray(b["velocity"], float)).tolist(),
                             detection_score=float(score))
                        for b, score in zip(seen, np.linspace(1.0, 0.5, len(seen)))]
    out = {}
    for key, results in (("random boxes", random), ("ground-truth boxes", truth)):
        path = Path(out_dir) / f"results_{key.split()[0]}_{scene}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(meta=meta, results=results)))
        out[key] = path
    return out


def score_both(nuscenes_root, nusc, results_json, scene: str) -> dict:
    """pc_kd's metric and the devkit's ``DetectionEval`` (on a copy of the tables restricted to ``scene``) of one
    results JSON: ``{"pc_kd": summary, "devkit": summary, "largest_difference": float}``."""
    from pc_kd.evaluation.nuscenes_tables import (devkit_eval, gt_from_tables, largest_difference, metrics_summary,
                                                  scene_samples, score_results)

    ours = metrics_summary(score_results(nusc, results_json, [scene]))
    devkit = devkit_eval(nuscenes_root, VERSION, results_json, [scene])
    gts, _, _ = gt_from_tables(nusc, scene_samples(nusc, [scene]))
    present = sorted({b["detection_name"] for per in gts.values() for b in per if b["num_pts"] > 0})
    return dict(pc_kd=ours, devkit=devkit, largest_difference=largest_difference(ours, devkit),
                classes_with_gt=present)


def _depth_batches(runner, split: str, frames: Optional[Sequence[int]] = None):
    """(model, inputs after the data preprocessor) per frame of ``split`` (those at ``frames``, default all) with
    LiDAR depth maps."""
    from pc_kd.engine.runner import bare_model

    model = bare_model(runner.model).eval()
    dataset = runner.build_dataloader(scene_loader(runner.cfg, split)).dataset
    for i in (range(len(dataset)) if frames is None else frames):
        batch = pseudo_collate([dataset[i]])
        with torch.no_grad():
            yield model, model.data_preprocessor(batch, False)["inputs"]


def _depth_against_lidar(model, inputs, predict: bool = True):
    """``(prob [V, D, h, w] or None, target [V, h, w], centres [D])`` of one frame: the depth net's distribution
    over the bins (when ``predict``), the LiDAR target bin of each feature pixel as the depth loss takes it (-1:
    none in range) and the bins' centre depths (metres)."""
    lss = model.camera_encoder.view_transform
    prob = None
    if predict:
        with torch.no_grad():
            imgs = inputs["imgs"]
            feats = model.camera_encoder.image_encoder(imgs.flatten(0, 1))
            feats = feats.view(*imgs.shape[:2], *feats.shape[1:])
            prob = lss.depth_and_context(feats, inputs["lidar2img"])[:, :lss.num_bins].softmax(1)
    centres = lss.start + (torch.arange(lss.num_bins, dtype=torch.float32) + 0.5) * lss.step
    return prob, lss.depth_targets(inputs["depth_maps"])[0], centres


def depth_scores(runner, train_split: str = "train", test_split: str = "val", train_frames: Optional[Sequence[int]]
                 = None, test_frames: Optional[Sequence[int]] = None) -> dict:
    """The camera depth net against LiDAR depth on the frames of ``test_split``, per feature pixel whose LiDAR
    target (the nearest depth in its stride x stride patch, as the depth loss takes it) lies in the bins: bin
    accuracy (predicted bin = target bin) and abs-rel (``|d - d_lidar| / d_lidar``, ``d`` the expected depth
    over the predicted distribution at bin centres, ``d_lidar`` the centre of the target bin); and the same two numbers of a baseline predicting for every
    pixel its image row's mean LiDAR depth over the frames of ``train_split`` (all cameras). ``train_frames`` /
    ``test_frames``: only those frames of the split (indices, default all)."""
    sums = rows = None
    for model, inputs in _depth_batches(runner, train_split, train_frames):
        _, target, centres = _depth_against_lidar(model, inputs, predict=False)
        depth = centres[target.clamp(min=0)]
        ok = target >= 0
        s = torch.where(ok, depth, torch.zeros_like(depth)).sum((0, 2))
        n = ok.sum((0, 2))
        sums, rows = (s, n) if sums is None else (sums + s, rows + n)
    row_mean = sums / rows.clamp(min=1)
    hits = {"depth net": [0, 0.0], "row prior": [0, 0.0]}
    count = 0
    for model, inputs in _depth_batches(runner, test_split, test_frames):
        lss = model.camera_encoder.view_transform
        prob, target, centres = _depth_against_lidar(model, inputs)
        ok = target >= 0
        truth = centres[target.clamp(min=0)]
        expected = (prob * centres.view(1, -1, 1, 1)).sum(1)
        prior = row_mean.view(1, -1, 1).expand_as(truth)
        prior_bin = torch.floor((prior - lss.start) / lss.step).clamp(0, lss.num_bins - 1).long()
        for key, pred, pred_bin in (("depth net", expected, prob.argmax(1)), ("row prior", prior, prior_bin)):
            hits[key][0] += int((pred_bin == target)[ok].sum())
            hits[key][1] += float(((pred - truth).abs() / truth)[ok].sum())
        count += int(ok.sum())
    return {key: dict(bin_accuracy=h[0] / max(count, 1), abs_rel=h[1] / max(count, 1), pixels=count)
            for key, h in hits.items()}


def pictures(runners: Mapping[str, object], nusc, out_dir, frame: int = 20) -> list:
    """Frame ``frame`` of scene-0916: the real LiDAR in BEV with GT and each detector's predictions per class; the
    fusion (else camera) detector's predictions drawn in the six full-size camera images; the depth net's depth
    beside the LiDAR depth."""
    from PIL import Image

    from pc_kd.engine.runner import bare_model
    from pc_kd.visualization import draw_camera_detections, plot_bev_detections, plot_depth_comparison

    files, out_dir = [], Path(out_dir)
    for name, runner in runners.items():
        model = bare_model(runner.model).eval()
        dataset = runner.build_dataloader(scene_loader(runner.cfg, "val")).dataset
        item = dataset[frame]
        batch = pseudo_collate([item])
        with torch.no_grad():
            sample = model.test_step(batch)[0]
        gt, pred = sample.gt_instances_3d, sample.pred_instances_3d
        classes = dataset.metainfo["classes"]
        points = batch["inputs"]["points"][0].numpy()
        files.append(plot_bev_detections(
            points, gt.bboxes_3d, gt.labels_3d.numpy(), pred.bboxes_3d, pred.labels_3d.numpy(),
            pred.scores_3d.numpy(), classes, out_dir / f"bev_{name}_{VAL_SCENE}.png",
            bev_range=runner.cfg.model.head.point_cloud_range,
            title=f"{name} detector on {VAL_SCENE} (trained on {TRAIN_SCENE}): GT dashed, predictions solid"))
        if name in ("fusion", "camera") and not any("cameras_" in str(f) for f in files):
            info = dataset.get_data_info(frame)
            rig = info["cameras"]
            images = [np.asarray(Image.open(p).convert("RGB").reduce(2)) for p in info["img_paths"]]
            half = np.diag([0.5, 0.5, 1.0, 1.0])
            lidar2img = np.stack([half @ m for m in rig.lidar2img])
            files.append(draw_camera_detections(
                images, lidar2img, pred.bboxes_3d, pred.labels_3d.numpy(), pred.scores_3d.numpy(), classes,
                out_dir / f"cameras_{name}_{VAL_SCENE}.png", cam_names=rig.names, gt_boxes=gt.bboxes_3d,
                gt_labels=gt.labels_3d.numpy(),
                title=f"{name} detector on {VAL_SCENE}: GT dashed, predictions solid (score >= 0.3)"))
        if name == "camera":
            with torch.no_grad():
                inputs = model.data_preprocessor(batch, False)["inputs"]
            prob, target, centres = _depth_against_lidar(model, inputs)
            lidar = torch.where(target >= 0, centres[target.clamp(min=0)], torch.zeros(()))
            imgs = batch["inputs"]["imgs"][0].permute(0, 2, 3, 1).numpy()
            files.append(plot_depth_comparison(
                imgs, lidar.numpy(), (prob * centres.view(1, -1, 1, 1)).sum(1).numpy(), sample.cam_names,
                out_dir / f"depth_camera_{VAL_SCENE}.png",
                title=f"camera depth net on {VAL_SCENE} (trained on {TRAIN_SCENE}) beside the LiDAR depth"))
    return files


def format_table(rows: Sequence[dict], depth: Optional[dict] = None) -> str:
    """The demo's table: per row mAP / NDS by pc_kd and by the devkit, their largest difference, per-class AP
    (pc_kd's; "-" where the scene has no scored GT box of the class); then the depth scores."""
    head = "| row | scene | mAP pc_kd | mAP devkit | NDS pc_kd | NDS devkit | max diff | " + \
           " | ".join(f"AP {c}" for c in PER_CLASS) + " |"
    lines = [head, "|" + "---|" * (7 + len(PER_CLASS))]
    for row in rows:
        ours, dev = row["pc_kd"], row["devkit"]
        lines.append(f"| {row['name']} | {row['scene']} | {ours['mean_ap']:.3f} | {dev['mean_ap']:.3f} | "
                     f"{ours['nd_score']:.3f} | {dev['nd_score']:.3f} | {row['largest_difference']:.1g} | " +
                     " | ".join(f"{ours['mean_dist_aps'][c]:.3f}" if c in row["classes_with_gt"] else "-"
                                for c in PER_CLASS) + " |")
    if depth:
        lines += ["", f"| camera depth on {VAL_SCENE} ({depth['depth net']['pixels']} feature pixels with LiDAR "
                      f"depth) | bin accuracy | abs-rel |", "|---|---|---|"]
        lines += [f"| {key} | {d['bin_accuracy']:.3f} | {d['abs_rel']:.3f} |" for key, d in depth.items()]
    return "\n".join(lines)


def select_on_train_scene(nuscenes_root, nusc, info_root, work_dir, iters: int, checkpoints: Sequence[int],
                          fit_frames: int = 30) -> dict:
    """Choose the LiDAR detector's iteration count on scene-0523 alone: train on its first ``fit_frames`` frames
    (in time) for ``iters`` iterations, score the checkpoints ``checkpoints`` on its remaining frames (pc_kd's
    metric, GT from the tables) and on the frames trained on. Returns ``{iteration: {"held_out": summary,
    "fitted": summary}}``; scene-0916 is not read."""
    from pc_kd.evaluation.nuscenes_tables import metrics_summary, score_results
    from pc_kd.utils.io import load_pickle

    tokens = [i["token"] for i in load_pickle(Path(info_root) / "nuscenes_infos_train.pkl")["data_list"]]
    options = dict(run_options(nuscenes_root, info_root, work_dir))
    options["train_dataloader.dataset.indices"] = list(range(fit_frames))
    options["default_hooks.checkpoint.interval"] = min(checkpoints)
    options["default_hooks.checkpoint.max_keep_ckpts"] = len(checkpoints) + 1
    runner, _ = train_or_reuse(CONFIGS["lidar"], work_dir, options, "select_lidar", iters)
    from pc_kd.engine.checkpoint import load_local_checkpoint

    out = {}
    for it in checkpoints:
        state = load_local_checkpoint(str(Path(work_dir) / f"iter_{it}.pth"))
        runner.model.load_state_dict(state["state_dict"])
        path = predict_results(runner, "train", Path(work_dir) / f"results_iter_{it}.json")
        out[it] = {part: metrics_summary(score_results(nusc, path, [TRAIN_SCENE], samples=chosen))
                   for part, chosen in (("held_out", tokens[fit_frames:]), ("fitted", tokens[:fit_frames]))}
    return out


def select_depth_on_train_scene(nuscenes_root, info_root, work_dir, iters: int = 500, fit_frames: int = 30) -> dict:
    """Choose the camera depth net's ray encoding on scene-0523 alone: the camera config trained on its first
    ``fit_frames`` frames (in time) for ``iters`` iterations without and with ``ray_encoding``, the depth net scored
    on its remaining frames against the row prior of the frames trained on (:func:`depth_scores`). Returns
    ``{"without rays" | "with rays": depth_scores}``; scene-0916 is not read."""
    from pc_kd.utils.io import load_pickle

    count = len(load_pickle(Path(info_root) / "nuscenes_infos_train.pkl")["data_list"])
    out = {}
    for key, rays in (("without rays", False), ("with rays", True)):
        run_dir = Path(work_dir) / ("rays" if rays else "no_rays")
        options = dict(run_options(nuscenes_root, info_root, run_dir))
        options["train_dataloader.dataset.indices"] = list(range(fit_frames))
        options["model.camera_encoder.view_transform.ray_encoding"] = rays
        runner, _ = train_or_reuse(CONFIGS["camera"], run_dir, options, f"select_depth_{run_dir.name}", iters)
        out[key] = depth_scores(runner, "train", "train", train_frames=range(fit_frames),
                                test_frames=range(fit_frames, count))
    return out
