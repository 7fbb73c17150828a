"""S3DIS ``Stanford3dDataset_v1.2_Aligned_Version`` -> pc_kd / mmdet3d-processed layout and info file.

Input: ``<root>/Area_<k>/<room>/Annotations/<class>_<n>.txt``, rows ``x y z r g b``. Each annotation file is
one instance; its class is the file-name prefix (``stairs``, not among the 13 classes, becomes ``clutter``
as in the reference S3DIS tools). Output under ``out_dir``: ``points/Area_<k>_<room>.bin`` (float32 x y z
shifted so the room's minimum corner is 0, r g b 0..255), ``semantic_mask/...`` (int64 0..12),
``instance_mask/...`` (int64, 1.. per annotation file) and ``s3dis_infos_Area_<k>.pkl``.
"""
import logging
from pathlib import Path

import numpy as np
from mmengine.logging import print_log
from tqdm import tqdm

from pc_kd.structures.class_names import S3DIS_CLASSES
from pc_kd.utils.checks import check_finite_points
from pc_kd.utils.io import dump_pickle_atomic

from .common import resumable_entry, write_point_scene


def read_annotation(path: Path) -> np.ndarray:
    """``[N, 6]`` float64 rows of an annotation file; a malformed line raises naming file and line."""
    rows = []
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            parts = raw.split()
            if not parts:
                continue
            try:
                rows.append([float(v) for v in parts[:6]])
            except ValueError as err:
                raise ValueError(f"{path}:{lineno}: cannot parse {raw[:80]!r} as 'x y z r g b' ({err}); fix "
                                 f"that line (S3DIS v1.2 has one known bad byte in Area_5/hallway_6)") from err
            if len(rows[-1]) != 6:
                raise ValueError(f"{path}:{lineno}: expected 6 values (x y z r g b), got {len(parts)}")
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


def convert_s3dis_room(room_dir, out_dir, area: str) -> dict:
    room_dir = Path(room_dir)
    files = sorted((room_dir / "Annotations").glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"{room_dir / 'Annotations'}: no <class>_<n>.txt annotation files")
    points, semantic, instance = [], [], []
    unknown = set()
    for inst, path in enumerate(files, 1):
        cls = path.stem.rsplit("_", 1)[0]
        if cls not in S3DIS_CLASSES:
            unknown.add(cls)
            cls = "clutter"
        rows = read_annotation(path)
        points.append(rows)
        semantic.append(np.full(len(rows), S3DIS_CLASSES.index(cls), np.int64))
        instance.append(np.full(len(rows), inst, np.int64))
    if unknown:
        print_log(f"{room_dir}: classes {sorted(unknown)} mapped to clutter", "current", logging.INFO)
    points = check_finite_points(np.concatenate(points), f"{room_dir}/Annotations")
    points[:, :3] -= points[:, :3].min(0)
    name = f"{area}_{room_dir.name}"
    semantic, instance = np.concatenate(semantic), np.concatenate(instance)
    entry = write_point_scene(out_dir, name, points.astype(np.float32), semantic, instance)
    boxes = []
    for inst in np.unique(instance):
        m = instance == inst
        lo, hi = points[m, :3].min(0), points[m, :3].max(0)
        label = int(semantic[m][0])
        if S3DIS_CLASSES[label] in ("table", "chair", "sofa", "bookcase", "board"):
            boxes.append(dict(bbox_3d=[*((lo + hi) / 2).tolist(), *(hi - lo).tolist(), 0.0], bbox_label_3d=label))
    entry.update(sample_idx=name, instances=boxes)
    return entry


def create_s3dis_infos(root, out_dir, areas=(1, 2, 3, 4, 5, 6)) -> list:
    """Convert every room of the given areas; writes one ``s3dis_infos_Area_<k>.pkl`` per area (atomically;
    an interrupted run resumes at the first unfinished room)."""
    root, out_dir = Path(root), Path(out_dir)
    written = []
    for k in areas:
        area = f"Area_{k}"
        area_dir = root / area
        if not area_dir.is_dir():
            raise FileNotFoundError(f"{area_dir} not found: expected Stanford3dDataset_v1.2_Aligned_Version/"
                                    f"Area_<k>/<room>/Annotations/")
        rooms = sorted(p for p in area_dir.iterdir() if (p / "Annotations").is_dir())
        data_list = [resumable_entry(out_dir, f"{area}_{r.name}", lambda r=r: convert_s3dis_room(r, out_dir, area))
                     for r in tqdm(rooms, desc=area)]
        metainfo = dict(dataset="s3dis", classes=S3DIS_CLASSES, info_version="1.1")
        written.append(dump_pickle_atomic({"metainfo": metainfo, "data_list": data_list},
                                          out_dir / f"s3dis_infos_{area}.pkl"))
    return written
