"""A REAL pretrained 2D teacher fused into a REAL indoor scan (what ``tools/demo_real_teachers.py`` runs): the PASCAL
VOC ESPNetv2 network over the 100 posed RGB-D frames of ScanNet scene0000_00, its features averaged into the
scene's mesh vertices (``pc_kd.projection.fuse_scene``) with three visibility tests (the frames' depth maps, a
z-buffer over the projected vertices, none), and the zero-shot labels of the fused features (the teacher's own
classifier on them) scored against ScanNet's vertex labels on the classes the teacher names.

The teacher's classifier is a 1x1 conv on the fused 10-channel features, so classifying the fused features is
the same as fusing the logits (a mean of affine maps is the affine map of the mean)."""
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch

__all__ = ["SCANNET_SCENE", "VOC_TO_NYU40", "ZERO_SHOT_CLASSES", "zero_shot_classes", "truth_classes", "scannet_frames", "scannet_vertices", "zero_shot_scores",
           "fuse_and_score_indoor", "format_indoor_table", "with_random_weights", "RANDOM_ROW"]

SCANNET_SCENE = "scannet_scene0000_00"
# the VOC classes that name ScanNet objects, and their nyu40 ids; every other labelled vertex is "not these"
VOC_TO_NYU40 = {"chair": 5, "sofa": 6, "diningtable": 7}
DEPTH_SHIFT = 1000.0  # ScanNet depth PNGs: millimetres


def scannet_frames(scene_dir, step: int = 1) -> List[dict]:
    """The posed RGB-D frames of ``<scene_dir>/frames`` as fusion reads them (``img_path``, ``cam2world``,
    ``cam2img`` (the colour intrinsics), ``depth_path``, ``depth_shift``), every ``step``-th, in name order."""
    from pc_kd.utils.checks import DataError

    folder = Path(scene_dir) / "frames"
    intrinsic = folder / "intrinsic_color.txt"
    if not intrinsic.is_file():
        raise DataError(f"{folder}: no intrinsic_color.txt (the colour intrinsics, 4x4); the frames cannot be "
                        "projected without it")
    cam2img = np.loadtxt(intrinsic)
    frames = []
    for image in sorted(folder.glob("*.jpg"))[::step]:
        pose_file = image.with_suffix(".txt")
        if not pose_file.is_file():
            raise DataError(f"{image}: no pose file {pose_file.name} (4x4 camera-to-world)")
        pose = np.loadtxt(pose_file)
        if pose.shape != (4, 4) or not np.isfinite(pose).all() or not np.abs(pose).any():
            raise DataError(f"{pose_file}: not a valid 4x4 camera-to-world pose (ScanNet marks lost tracking with "
                            "-inf or zeros); drop the frame")
        frames.append(dict(img_path=str(image), cam2world=pose, cam2img=cam2img,
                           depth_path=str(image.with_suffix(".png")), depth_shift=DEPTH_SHIFT))
    if not frames:
        raise DataError(f"{folder}: no <frame>.jpg colour frames")
    return frames


def scannet_vertices(scene_dir):
    """``(xyz [N, 3] float64 in the poses' frame, nyu40 label [N] int64)`` of the scene's mesh vertices."""
    scene_dir = Path(scene_dir)
    name = scene_dir.name.replace("scannet_", "")
    from pc_kd.utils.io import read_bin

    vertices = read_bin(scene_dir / f"{name}_vert_unaligned.bin", np.float32, 6, what="vertex file")
    labels = np.load(scene_dir / f"{name}_sem_label_all.npy").astype(np.int64)
    if len(labels) != len(vertices):
        raise ValueError(f"{scene_dir}: {len(labels)} labels for {len(vertices)} vertices")
    return vertices[:, :3].astype(np.float64), labels


ZERO_SHOT_CLASSES = list(VOC_TO_NYU40) + ["not these"]


def zero_shot_classes(names: Sequence[str]) -> np.ndarray:
    """Teacher class names -> indices into :data:`ZERO_SHOT_CLASSES` (any other name: ``not these``)."""
    lookup = {name: k for k, name in enumerate(VOC_TO_NYU40)}
    return np.array([lookup.get(n, len(VOC_TO_NYU40)) for n in names], dtype=np.int64)


def truth_classes(nyu40: np.ndarray) -> np.ndarray:
    """nyu40 ids -> indices into :data:`ZERO_SHOT_CLASSES` (unannotated vertices too are ``not these``)."""
    out = np.full(len(nyu40), len(VOC_TO_NYU40), dtype=np.int64)
    for k, nyu in enumerate(VOC_TO_NYU40.values()):
        out[nyu40 == nyu] = k
    return out


def zero_shot_scores(pred_names: Sequence[str], nyu40: np.ndarray, seen: np.ndarray) -> dict:
    """Per class of :data:`VOC_TO_NYU40` and ``not these``: IoU and precision of the zero-shot labels over the
    labelled vertices (nyu40 > 0); an unseen vertex's label is ``not these`` (the teacher says nothing of it)."""
    classes = ZERO_SHOT_CLASSES
    gt, pred = truth_classes(nyu40), zero_shot_classes(pred_names)
    pred[~seen] = len(classes) - 1
    keep = nyu40 > 0
    gt, pred = gt[keep], pred[keep]
    out = {}
    for k, name in enumerate(classes):
        tp, fp, fn = int(((pred == k) & (gt == k)).sum()), int(((pred == k) & (gt != k)).sum()), \
            int(((pred != k) & (gt == k)).sum())
        out[name] = dict(iou=tp / (tp + fp + fn) if tp + fp + fn else float("nan"),
                         precision=tp / (tp + fp) if tp + fp else float("nan"), vertices=int((gt == k).sum()),
                         predicted=tp + fp)
    return out


def with_random_weights(teacher, seed: int = 0):
    """A copy of ``teacher`` with every layer re-initialised (PyTorch's default init, ``seed``) and fresh
    BatchNorm statistics: the same network and classes, knowing nothing (a table's trivial baseline)."""
    import copy

    torch.manual_seed(seed)
    random = copy.deepcopy(teacher)
    for module in random.modules():
        if module is not random and hasattr(module, "reset_parameters"):
            module.reset_parameters()
        if hasattr(module, "reset_running_stats"):
            module.reset_running_stats()
    return random.eval()


RANDOM_ROW = "depth, random weights"


def fuse_and_score_indoor(teacher, scene_dir, visibilities=("depth", "zbuffer", "none"), frame_step: int = 1,
                          random_baseline: bool = True, log=print) -> Dict[str, dict]:
    """Fuse ``teacher`` (an :class:`~pc_kd.models.backbones.espnetv2.ESPNetV2Teacher`) into the scene's vertices
    once per visibility test and score the zero-shot labels: ``{visibility: {"seen": share of vertices seen by
    >= 1 frame, "scores": zero_shot_scores, "seconds": fusion time, "frames": count}}``. The depth test is
    OpenScene's (``|d - z| <= 0.25 d``); the z-buffer one splats the projected vertices (radius 3 px). With
    ``random_baseline`` also :data:`RANDOM_ROW`: the same network with random weights (:func:`with_random_weights`)
    fused with the depth test."""
    from pc_kd.projection.fusion import fuse_scene

    points, nyu40 = scannet_vertices(scene_dir)
    frames = scannet_frames(scene_dir, frame_step)
    runs = [(v, v, teacher) for v in visibilities]
    if random_baseline:
        runs.append((RANDOM_ROW, "depth", with_random_weights(teacher)))
    out = {}
    for row, visibility, model in runs:
        start = time.perf_counter()
        feats, count = fuse_scene(model, torch.from_numpy(points), frames, Path(scene_dir).name,
                                  visibility=visibility, depth_tol=0.25, device="cpu")
        seconds = time.perf_counter() - start
        seen = count.numpy() > 0
        names = np.array(model.class_names)[model.classify(feats.float()).argmax(1).numpy()]
        out[row] = dict(seen=float(seen.mean()), seconds=seconds, frames=len(frames),
                               scores=zero_shot_scores(names, nyu40, seen), labels=names, count=count.numpy())
        log(f"fused {len(frames)} frames into {len(points)} vertices ({row}) in {seconds:.0f} s: "
            f"{seen.mean() * 100:.1f} % seen")
    return out


def format_indoor_table(results: Dict[str, dict]) -> str:
    classes = ZERO_SHOT_CLASSES
    head = "| visibility (teacher) | vertices seen | " + " | ".join(f"IoU {c} | precision {c}" for c in classes) + " | fusion s |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    fmt = lambda v: "-" if v != v else f"{v:.3f}"  # noqa: E731
    for visibility, r in results.items():
        cells = " | ".join(f"{fmt(r['scores'][c]['iou'])} | {fmt(r['scores'][c]['precision'])}" for c in classes)
        lines.append(f"| {visibility} | {r['seen'] * 100:.1f} % | {cells} | {r['seconds']:.0f} |")
    return "\n".join(lines)
