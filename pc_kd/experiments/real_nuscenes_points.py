"""A REAL pretrained 2D teacher distilled into REAL LiDAR points (the outdoor part of ``tools/demo_real_teachers.py``):
the Cityscapes ESPNetv2 network over the six cameras of every nuScenes key frame of scene-0523 (Boston) and
scene-0916 (Singapore), its decoder features averaged into the LiDAR points each camera sees (motion-compensated
``lidar2cam``), a spconv point student distilled from them on scene-0523 with no label, and every row scored on
scene-0916's points (the ego vehicle's own points left out) against labels derived from the 3D boxes, with the
teacher's classes mapped to the box classes (:data:`CITYSCAPES_TO_BOX_CLASSES`):

(a) the fused teacher labels on the points a camera sees; (b) the distilled student on the same points; (c) the
student on the points no camera sees (the teacher says nothing there); (d) a random student (same network, its
initial weights); (e) the same network trained with scene-0523's box-derived labels (the upper bound); (f) on the
unseen points, the teacher label of the nearest seen point (what a user gets without a 3D student).

The student's labels are the teacher's own classifier (one 1x1 conv) on the student's 10-channel features, so the
student needs no label and no class list of its own.
"""
import copy
import time
from pathlib import Path
from typing import Dict, List, Mapping, Sequence

import numpy as np
import torch

from pc_kd.experiments import common
from pc_kd.structures.class_names import IGNORE_INDEX, NUSCENES_BOX_POINT_CLASSES as POINT_CLASSES

__all__ = ["CITYSCAPES_TO_BOX_CLASSES", "POINT_CLASSES", "CONFIGS", "FUSION", "class_mapping", "scored_classes",
           "prepare", "run_config", "train_or_reuse", "split_in_time", "predict_rows", "iou_row", "score_rows",
           "format_outdoor_table", "random_student", "run_outdoor", "SELECT_FIRST", "selection_settings",
           "select_on_train_scene"]

# Cityscapes class -> box-derived point class; every other Cityscapes class (road, building, vegetation, ...) -> other.
# "train" (rail vehicles) -> bus: nuScenes has no rail class and labels large passenger vehicles bus. "rider" ->
# bicycle: nuScenes puts a rider inside the box of the two-wheeler, and Cityscapes' riders are mostly cyclists;
# barrier and traffic_cone have no Cityscapes class (the teacher cannot name them, so they are not scored).
CITYSCAPES_TO_BOX_CLASSES = {"car": "car", "truck": "truck", "bus": "bus", "train": "bus", "person": "pedestrian",
                             "rider": "bicycle", "bicycle": "bicycle", "motorcycle": "motorcycle"}
CONFIGS = dict(distill="configs/openscene_distill/openscene_spconv-unet_espnetv2-city_nuscenes-2scenes.py",
               labels="configs/supervised/supervised_spconv-unet_none_nuscenes-2scenes-points.py")
TEACHER_WEIGHTS = "teachers/espnetv2_s_2.0_city_1024x512.pth"
# images at half size (800 x 450; the teacher was trained on 1024 x 512 crops); LiDAR points lie on the first
# surface along their own ray and the cameras sit within a metre of the LiDAR, so no occlusion test
FUSION = dict(visibility="none", border=2, batch_frames=6)


def class_mapping(teacher_names: Sequence[str], mapping: Mapping[str, str],
                  classes: Sequence[str] = POINT_CLASSES) -> np.ndarray:
    """``[len(teacher_names)]`` int64: the index into ``classes`` of each teacher class (``mapping[name]``, or
    ``other`` for a name the mapping leaves out). Raises ``DataError`` for a mapping key the teacher lacks or a value
    ``classes`` lacks (a typo would silently score a class as never predicted)."""
    from pc_kd.utils.checks import DataError

    unknown = [k for k in mapping if k not in teacher_names]
    if unknown:
        raise DataError(f"class mapping: {unknown} not among the teacher's classes {list(teacher_names)}; map the "
                        f"teacher's own names")
    bad = sorted({v for v in mapping.values() if v not in classes})
    if bad:
        raise DataError(f"class mapping: target class(es) {bad} not among {list(classes)}")
    other = list(classes).index("other")
    return np.array([list(classes).index(mapping[n]) if n in mapping else other for n in teacher_names],
                    dtype=np.int64)


def scored_classes(mapping: Mapping[str, str] = CITYSCAPES_TO_BOX_CLASSES,
                   classes: Sequence[str] = POINT_CLASSES) -> List[str]:
    """The classes a row is scored on: those the mapped teacher can name, and ``other``."""
    return [c for c in classes if c in set(mapping.values()) or c == "other"]


def prepare(real_root, work_dir, log=print) -> dict:
    """Info files (detection, then per-point) of both scenes under ``<work_dir>/infos`` and ``<work_dir>/points``
    and the teacher's features fused into every key frame's points (``<work_dir>/points/fused``, resumable: frames
    fused with the same teacher and options are kept). Returns ``dict(teacher, fusion={split: fuse_dataset
    result}, infos={split: path})``."""
    from pc_kd.datasets import NuScenesPointDataset
    from pc_kd.datasets.converters.nuscenes_points import create_nuscenes_point_infos
    from pc_kd.experiments.real_nuscenes import convert
    from pc_kd.models.backbones.espnetv2 import ESPNetV2Teacher
    from pc_kd.projection import fuse_dataset
    from pc_kd.projection.fusion import fusion_fingerprint

    root, work = Path(real_root), Path(work_dir)
    det = convert(root / "nuscenes_2scenes", work / "infos")
    weights = root / TEACHER_WEIGHTS
    teacher = ESPNetV2Teacher(weights=str(weights), input_scale=0.5)
    fingerprint = fusion_fingerprint(dict(type="ESPNetV2Teacher", pretrained=str(weights), input_scale=0.5), FUSION)
    infos, fusion = {}, {}
    for split, path in det.items():
        infos[split] = create_nuscenes_point_infos(path, root / "nuscenes_2scenes", work / "points", log=log)
        dataset = NuScenesPointDataset(ann_file=str(infos[split]))
        frames = [dataset.get_data_info(i) for i in range(len(dataset))]
        fusion[split] = fuse_dataset(teacher, frames, work / "points" / "fused", desc=f"fusing {split}",
                                     fingerprint=fingerprint, device="cpu", **FUSION)
        log(f"fused the Cityscapes teacher into {len(frames)} {split} key frames in {fusion[split]['seconds']:.0f} s "
            f"({fusion[split]['skipped']} reused): {fusion[split]['coverage'] * 100:.1f} % of the points seen")
    return dict(teacher=teacher, fusion=fusion, infos=infos)


SPLITS = dict(train="nuscenes_points_train.pkl", test="nuscenes_points_val.pkl")


def run_config(config, work_dir, name: str, iters=None, splits: Mapping[str, str] = SPLITS, options=None):
    """``config`` with ``options`` (``--cfg-options`` keys) seeded (0) into ``<work_dir>/<name>``, reading the info
    files ``splits`` (``train`` / ``test``: file names) and the fused features under ``<work_dir>/points``;
    ``iters`` shortens the schedule."""
    from pc_kd.experiments.real_nuscenes import scale_schedule

    data_root = Path(work_dir) / "points"
    cfg = common.seeded_config(config, options or {}, 0, Path(work_dir) / name,
                               f"demo_real_points_{name.replace('/', '_')}")
    for key in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[key].dataset.data_root = str(data_root)
        cfg[key].dataset.ann_file = splits["train" if key.startswith("train") else "test"]
        for step in cfg[key].dataset.pipeline:
            if step["type"] == "LoadFusedFeatures":
                step["feature_dir"] = str(data_root / "fused")
    if iters is not None:
        scale_schedule(cfg, iters)
    return cfg


def train_or_reuse(config, work_dir, name: str, iters=None, splits: Mapping[str, str] = SPLITS, options=None):
    """Train (or reuse the finished run of) ``config`` by the Runner (:func:`run_config`); returns ``(model,
    record)``, the record holding the run's ``test_dataloader`` config."""
    cfg = run_config(config, work_dir, name, iters, splits, options)
    test_loader = copy.deepcopy(cfg.test_dataloader)
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None  # scored afterwards, every row alike
    runner, record = common.train_and_record(cfg, config, name)
    return runner.model, dict(record, test_dataloader=test_loader)


def train_students(work_dir, runs: Mapping[str, tuple], iters=None, splits: Mapping[str, str] = SPLITS, log=print):
    """Train (or reuse) every run of ``runs`` (row name -> ``(run folder under work_dir, config, cfg options)``) by
    :func:`train_or_reuse`, logging each; returns ``(models {row name: model}, records {row name: record},
    the runs' test dataloader config)``."""
    models, training, test_loader = {}, {}, None
    for name, (folder, config, options) in runs.items():
        models[name], record = train_or_reuse(config, work_dir, folder, iters, splits, options)
        test_loader = record.pop("test_dataloader")
        training[name] = record
        how = "reused" if record["reused"] else f"trained in {record['train_s'] / 60:.1f} min"
        log(f"{name}: {record.get('iters')} iterations at batch {record.get('batch_size')} ({how})")
    return models, training, test_loader


@torch.no_grad()
def predict_rows(models: Mapping[str, torch.nn.Module], teacher, loader_cfg, mapping=CITYSCAPES_TO_BOX_CLASSES) -> dict:
    """Over the frames of ``loader_cfg`` (a test dataloader config: points, labels, fused features): per frame the
    box-derived ``truth [N]``, ``seen [N]`` (a camera sees the point), xyz, and the labels (indices into
    :data:`POINT_CLASSES`) of ``teacher`` (its fused features classified), of each model of ``models`` (a
    ``PointFeatureDistiller``: the teacher's classifier on its features, mapped; a ``SparseSegmentor``: its own
    classes) and of ``nearest seen`` (the teacher label of the nearest seen point)."""
    from mmengine.runner import Runner
    from scipy.spatial import cKDTree

    to_box = torch.from_numpy(class_mapping(teacher.class_names, mapping))
    loader = Runner.build_dataloader(copy.deepcopy(loader_cfg))
    frames = []
    for data in loader:
        sample = data["data_samples"][0]
        fused = sample.teacher_feats
        seen = (fused.count > 0).numpy()
        frame = dict(truth=sample.gt_pts_seg.pts_semantic_mask.numpy(), seen=seen,
                     xyz=data["inputs"]["points"][0][:, :3].numpy(),
                     teacher=to_box[teacher.classify(fused.feats.float()).argmax(1)].numpy())
        for name, model in models.items():
            model.eval()
            batch = model.data_preprocessor(data, False)
            if hasattr(model, "point_logits"):
                frame[name] = model.point_logits(batch["inputs"]).argmax(1).numpy()
            else:
                feats = model.point_features_list(batch["inputs"])[0]
                frame[name] = to_box[teacher.classify(feats).argmax(1)].numpy()
        nearest = frame["teacher"].copy()
        if seen.any() and (~seen).any():
            _, idx = cKDTree(frame["xyz"][seen]).query(frame["xyz"][~seen])
            nearest[~seen] = frame["teacher"][seen][idx]
        frame["nearest seen"] = nearest
        frames.append(frame)
    return frames


def iou_row(frames: Sequence[dict], row: str, subset: str, classes: Sequence[str]) -> dict:
    """Per class of ``classes`` the IoU of ``row``'s labels on the scored points (truth not ``IGNORE_INDEX``: the
    ego vehicle) of ``subset`` (``seen`` / ``unseen``) of every frame (one confusion over all frames), their number,
    and ``mIoU``: the mean over the classes with at least one true point in the subset."""
    index = [POINT_CLASSES.index(c) for c in classes]
    tp, fp, fn, n = (np.zeros(len(classes), np.int64) for _ in range(4))
    points = 0
    for f in frames:
        keep = (f["seen"] if subset == "seen" else ~f["seen"]) & (f["truth"] != IGNORE_INDEX)
        truth, pred = f["truth"][keep], f[row][keep]
        points += int(keep.sum())
        for k, c in enumerate(index):
            tp[k] += int(((pred == c) & (truth == c)).sum())
            fp[k] += int(((pred == c) & (truth != c)).sum())
            fn[k] += int(((pred != c) & (truth == c)).sum())
            n[k] += int((truth == c).sum())
    iou = {c: (tp[k] / (tp[k] + fp[k] + fn[k]) if n[k] else float("nan")) for k, c in enumerate(classes)}
    present = [iou[c] for k, c in enumerate(classes) if n[k]]
    return dict(iou=iou, truth_points={c: int(n[k]) for k, c in enumerate(classes)}, points=points,
                mIoU=float(np.mean(present)) if present else float("nan"))


ROWS = (("a", "teacher", "seen", "fused teacher labels"), ("b", "student", "seen", "distilled student"),
        ("d", "random", "seen", "random student"), ("e", "labels", "seen", "student trained with scene-0523's labels"),
        ("c", "student", "unseen", "distilled student"), ("d", "random", "unseen", "random student"),
        ("e", "labels", "unseen", "student trained with scene-0523's labels"),
        ("f", "nearest seen", "unseen", "teacher label of the nearest seen point"))


def split_in_time(info_file, first: int) -> Dict[str, Path]:
    """``info_file``'s first ``first`` key frames and the rest, as two info files beside it (``*_first<n>.pkl``,
    ``*_rest<n>.pkl``): a validation part of the training scene for choosing settings."""
    from pc_kd.utils.io import dump_pickle_atomic, load_pickle

    info_file = Path(info_file)
    info = load_pickle(info_file, "point info file")
    frames = sorted(info["data_list"], key=lambda f: f["timestamp"])
    out = {}
    for part, chosen in (("train", frames[:first]), ("test", frames[first:])):
        out[part] = info_file.with_name(f"{info_file.stem}_{'first' if part == 'train' else 'rest'}{first}.pkl")
        dump_pickle_atomic(dict(metainfo=info["metainfo"], data_list=chosen), out[part])
    return {k: v.name for k, v in out.items()}


def score_rows(frames: Sequence[dict], classes: Sequence[str]) -> List[dict]:
    """One scored row per entry of ``ROWS`` whose labels ``frames`` hold."""
    return [dict(row=key, name=name, subset=subset, source=source, **iou_row(frames, source, subset, classes))
            for key, source, subset, name in ROWS if source in frames[0]]


def format_outdoor_table(rows: Sequence[dict], classes: Sequence[str], scored_on: str = "scene-0916") -> str:
    """Markdown: one line per scored row (``row``: its letter, or empty), IoU in %."""
    head = f"| row | {scored_on} points | mIoU | " + " | ".join(f"IoU {c}" for c in classes) + " |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    fmt = lambda v: "-" if v != v else f"{v * 100:.1f}"  # noqa: E731
    for r in rows:
        letter = f"({r['row']}) " if r["row"] else ""
        lines.append(f"| {letter}{r['name']} | {r['subset']} ({r['points']}) | "
                     f"{fmt(r['mIoU'])} | " + " | ".join(fmt(r["iou"][c]) for c in classes) + " |")
    return "\n".join(lines)


def random_student(config):
    """``config``'s model with its initial weights (seed 0): the floor of rows (d)."""
    torch.manual_seed(0)
    model = common.build("MODELS", common.load_config(config, {}).model)
    common.init_weights_quietly(model)
    return model.eval()


def run_outdoor(real_root, work_dir, iters=None, log=print) -> dict:
    """Everything of the outdoor table: :func:`prepare`, the distilled and the label-trained students (trained by
    the Runner, or reused), the random student, every row scored on scene-0916. Returns ``dict(rows, classes,
    frames, teacher, fusion, training={name: record}, seen)``, ``seen`` the share of scene-0916's scored points (the
    ego vehicle's left out) a camera sees."""
    prepared = prepare(real_root, work_dir, log)
    models, training, test_loader = train_students(
        work_dir, {"student": ("student", CONFIGS["distill"], None), "labels": ("labels", CONFIGS["labels"], None)},
        iters, log=log)
    models["random"] = random_student(CONFIGS["distill"])
    start = time.perf_counter()
    frames = predict_rows(models, prepared["teacher"], test_loader)
    classes = scored_classes()
    log(f"labelled {sum(len(f['truth']) for f in frames)} points of {len(frames)} scene-0916 frames by every row in "
        f"{time.perf_counter() - start:.0f} s")
    scored = [f["truth"] != IGNORE_INDEX for f in frames]
    seen = sum(int((f["seen"] & s).sum()) for f, s in zip(frames, scored)) / max(sum(int(s.sum()) for s in scored), 1)
    return dict(rows=score_rows(frames, classes), classes=classes, frames=frames, training=training, seen=seen,
                **prepared)


SELECT_FIRST = 30  # scene-0523 in time: its first 30 key frames train a setting, the points seen in its last 10 score it


def selection_settings(real_root) -> Dict[str, tuple]:
    """The settings :func:`select_on_train_scene` compares: name -> ``(config, cfg options)``."""
    classifier = dict(type="ESPNetV2Teacher", weights=str(Path(real_root) / TEACHER_WEIGHTS))
    return {"distilled (the table's student)": (CONFIGS["distill"], {}),
            "distilled, class_balance": (CONFIGS["distill"], {"model.class_balance": dict(
                classifier=classifier, power=0.5, max_weight=10.0)}),
            "trained with the labels (the table's row e)": (CONFIGS["labels"], {})}


def select_on_train_scene(real_root, work_dir, iters: int = 600, settings: Mapping[str, tuple] = None,
                          log=print) -> dict:
    """Compare ``settings`` (default :func:`selection_settings`) on scene-0523 alone: each trained ``iters``
    iterations on its first :data:`SELECT_FIRST` key frames (runs under ``<work_dir>/select/``, reused when
    finished) and scored, beside the fused teacher, on the points a camera sees in its last ones. scene-0916 is not
    read. Returns ``dict(rows, classes, training={name: record})``."""
    prepared = prepare(real_root, work_dir, log)
    splits = split_in_time(prepared["infos"]["train"], SELECT_FIRST)
    settings = selection_settings(real_root) if settings is None else settings
    runs = {name: (f"select/{k}", config, options) for k, (name, (config, options)) in enumerate(settings.items())}
    models, training, test_loader = train_students(work_dir, runs, iters, splits, log)
    frames = predict_rows(models, prepared["teacher"], test_loader)
    classes = scored_classes()
    rows = [dict(row="", name=name, subset="seen", source=name, **iou_row(frames, name, "seen", classes))
            for name in ("teacher", *models)]
    rows[0]["name"] = "fused teacher labels"
    return dict(rows=rows, classes=classes, training=training)
