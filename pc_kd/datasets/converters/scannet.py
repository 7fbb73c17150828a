"""ScanNet v2 official download -> pc_kd / mmdet3d-processed layout and info file.

Input (per scene, as the ScanNet download lays it out)::

    scans/<scene>/<scene>_vh_clean_2.ply                 mesh vertices x y z red green blue
    scans/<scene>/<scene>_vh_clean_2.labels.ply          per-vertex nyu40 id (property 'label')
    scans/<scene>/<scene>_vh_clean_2.0.010000.segs.json  per-vertex over-segment ids ('segIndices')
    scans/<scene>/<scene>.aggregation.json               objects = groups of segments ('segGroups')
    scans/<scene>/<scene>.txt                            'axisAlignment = m00 m01 ... m33'
    <frames_root>/<scene>/{color/<i>.jpg, depth/<i>.png, pose/<i>.txt, intrinsic/intrinsic_color.txt}
                                                         frames exported from the .sens file (optional)

Output under ``out_dir``: ``points/<scene>.bin`` (float32 x y z r g b, unaligned = the pose frame),
``semantic_mask/<scene>.bin`` (int64 nyu40 ids), ``instance_mask/<scene>.bin`` (int64, objectId + 1, 0 =
none), and ``scannet_infos_<split>.pkl`` listing, per scene, the axis-alignment matrix, axis-aligned boxes
of the objects (aligned frame, labels in ScanNet-20 order) and the posed colour frames (paths where they are).
"""
import json
import logging
from pathlib import Path
from typing import List, Optional

import numpy as np
from mmengine.logging import print_log
from tqdm import tqdm

from pc_kd.structures.class_names import SCANNET20_CLASSES, SCANNET20_NYU40_IDS, label_mapping
from pc_kd.utils.checks import check_finite_points
from pc_kd.utils.io import dump_pickle_atomic, require_file

from .common import resumable_entry, write_point_scene


def read_ply_vertices(path, fields) -> np.ndarray:
    """``[N, len(fields)]`` float64 of the named vertex properties of a PLY file."""
    from plyfile import PlyData

    path = require_file(path, "PLY file")
    try:
        vertex = PlyData.read(str(path))["vertex"]
    except Exception as err:  # plyfile raises several types for broken files
        raise ValueError(f"PLY file {path}: cannot be parsed ({err})") from err
    missing = [f for f in fields if f not in vertex.data.dtype.names]
    if missing:
        raise ValueError(f"PLY file {path}: vertex properties {missing} missing (has {vertex.data.dtype.names})")
    return np.stack([np.asarray(vertex[f], dtype=np.float64) for f in fields], 1)


def read_axis_alignment(meta_path) -> np.ndarray:
    """4x4 ``axisAlignment`` of ``<scene>.txt`` (identity when the scene has none, as test scenes)."""
    for line in Path(require_file(meta_path, "scene meta file")).read_text().splitlines():
        if line.strip().startswith("axisAlignment"):
            values = [float(v) for v in line.split("=", 1)[1].split()]
            if len(values) != 16:
                raise ValueError(f"{meta_path}: axisAlignment has {len(values)} numbers, expected 16")
            return np.array(values).reshape(4, 4)
    return np.eye(4)


def read_instances(segs_path, aggregation_path, num_vertices: int) -> np.ndarray:
    """``[N]`` int64 instance id per vertex: ``objectId + 1`` of the segment group holding it, 0 = none."""
    seg_indices = np.asarray(json.loads(Path(require_file(segs_path, "segs file")).read_text())["segIndices"])
    if len(seg_indices) != num_vertices:
        raise ValueError(f"{segs_path}: {len(seg_indices)} segIndices for {num_vertices} mesh vertices")
    groups = json.loads(Path(require_file(aggregation_path, "aggregation file")).read_text())["segGroups"]
    seg_to_instance = {}
    for group in groups:
        for seg in group["segments"]:
            seg_to_instance.setdefault(seg, group["objectId"] + 1)
    return np.array([seg_to_instance.get(s, 0) for s in seg_indices], dtype=np.int64)


def read_frames(frame_dir: Path, step: int) -> List[dict]:
    """Every ``step``-th exported frame with a finite pose: ``img_path``, ``depth_path``, ``cam2world``,
    ``cam2img`` (colour intrinsics, 4x4). Frames whose pose holds inf/NaN (ScanNet marks lost tracking so)
    are skipped and counted in the log."""
    color_dir = frame_dir / "color"
    if not color_dir.is_dir():
        return []
    K = np.loadtxt(require_file(frame_dir / "intrinsic" / "intrinsic_color.txt", "colour intrinsics"))
    ids = sorted(int(p.stem) for p in color_dir.glob("*.jpg"))[::step]
    frames, bad = [], 0
    for i in ids:
        pose = np.loadtxt(require_file(frame_dir / "pose" / f"{i}.txt", "camera pose"))
        if pose.shape != (4, 4) or not np.isfinite(pose).all():
            bad += 1
            continue
        depth = frame_dir / "depth" / f"{i}.png"
        frames.append(dict(img_path=str(color_dir / f"{i}.jpg"), cam2world=pose.tolist(), cam2img=K.tolist(),
                           depth_path=str(depth) if depth.is_file() else None, depth_shift=1000.0))
    if bad:
        print_log(f"{frame_dir}: skipped {bad} frames with invalid (inf/NaN) poses", "current", logging.WARNING)
    return frames


def aligned_boxes(xyz_aligned: np.ndarray, semantic: np.ndarray, instance: np.ndarray) -> List[dict]:
    """Axis-aligned boxes ``[cx, cy, cz, dx, dy, dz, 0]`` of the instances of ScanNet-20 classes other than
    wall and floor, ``bbox_label_3d`` = index in ScanNet-20."""
    to20 = label_mapping(SCANNET20_NYU40_IDS)
    out = []
    for inst in np.unique(instance[instance > 0]):
        mask = instance == inst
        nyu = np.bincount(semantic[mask]).argmax()
        label = int(to20[nyu]) if nyu < len(to20) else 255
        if label == 255 or SCANNET20_CLASSES[label] in ("wall", "floor"):
            continue
        lo, hi = xyz_aligned[mask].min(0), xyz_aligned[mask].max(0)
        out.append(dict(bbox_3d=[*((lo + hi) / 2).tolist(), *(hi - lo).tolist(), 0.0], bbox_label_3d=label))
    return out


def convert_scannet_scene(scene_dir, out_dir, frames_root: Optional[Path] = None, frame_step: int = 20) -> dict:
    """Convert one raw scene folder; returns its info entry."""
    scene_dir = Path(scene_dir)
    name = scene_dir.name
    verts = read_ply_vertices(scene_dir / f"{name}_vh_clean_2.ply", ("x", "y", "z", "red", "green", "blue"))
    check_finite_points(verts, f"{scene_dir / (name + '_vh_clean_2.ply')}")
    semantic = read_ply_vertices(scene_dir / f"{name}_vh_clean_2.labels.ply", ("label",))[:, 0].astype(np.int64)
    if len(semantic) != len(verts):
        raise ValueError(f"{scene_dir}: labels.ply has {len(semantic)} vertices, vh_clean_2.ply {len(verts)}")
    instance = read_instances(scene_dir / f"{name}_vh_clean_2.0.010000.segs.json",
                              scene_dir / f"{name}.aggregation.json", len(verts))
    align = read_axis_alignment(scene_dir / f"{name}.txt")
    xyz_aligned = verts[:, :3] @ align[:3, :3].T + align[:3, 3]
    entry = write_point_scene(out_dir, name, verts.astype(np.float32), semantic, instance)
    entry.update(sample_idx=name, axis_align_matrix=align.tolist(),
                 instances=aligned_boxes(xyz_aligned, semantic, instance),
                 images=read_frames(Path(frames_root or scene_dir.parent) / name, frame_step))
    return entry


def create_scannet_infos(root, out_dir, split: str = "train", scenes: Optional[List[str]] = None,
                         frames_root=None, frame_step: int = 20) -> Path:
    """Convert the scenes of ``root/scans`` (all, or ``scenes``, or those listed in
    ``root/scannetv2_<split>.txt``) and write ``out_dir/scannet_infos_<split>.pkl`` atomically.

    Every file is written atomically and each finished scene is recorded, so an interrupted conversion
    resumes where it stopped when the same command is run again.
    """
    root, out_dir = Path(root), Path(out_dir)
    scans = root / "scans"
    if not scans.is_dir():
        raise FileNotFoundError(f"{scans} not found: expected the ScanNet download layout root/scans/<scene>/")
    if scenes is None:
        split_file = root / f"scannetv2_{split}.txt"
        scenes = split_file.read_text().split() if split_file.is_file() else sorted(
            p.name for p in scans.iterdir() if p.is_dir())
    data_list = [resumable_entry(out_dir, s, lambda s=s: convert_scannet_scene(scans / s, out_dir, frames_root,
                                                                                frame_step))
                 for s in tqdm(scenes, desc=f"ScanNet {split}")]
    metainfo = dict(dataset="scannet", classes=SCANNET20_CLASSES, seg_raw_ids=SCANNET20_NYU40_IDS,
                    info_version="1.1")
    return dump_pickle_atomic({"metainfo": metainfo, "data_list": data_list},
                              out_dir / f"scannet_infos_{split}.pkl")
