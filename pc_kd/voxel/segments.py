"""Super-point sources other than VCCS: ScanNet's mesh over-segmentation and existing per-point files."""
import json
from pathlib import Path

import numpy as np

from pc_kd.utils.io import require_file


def consecutive(labels: np.ndarray) -> np.ndarray:
    """Relabel to ``0..K-1`` keeping the order of first ids."""
    return np.unique(labels, return_inverse=True)[1].reshape(-1).astype(np.int64)


def scannet_mesh_segments(segs_json, num_points: int) -> np.ndarray:
    """Labels ``[N]`` from a ScanNet ``<scene>_vh_clean_2.0.010000.segs.json`` (``segIndices`` per mesh vertex,
    the vertex order of ``_vh_clean_2.ply`` and of pc_kd's converted points)."""
    path = require_file(segs_json, "ScanNet segs file")
    try:
        seg = np.asarray(json.loads(Path(path).read_text())["segIndices"], dtype=np.int64)
    except (KeyError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: expected a JSON object with 'segIndices' ({err})") from err
    if len(seg) != num_points:
        raise ValueError(f"{path}: {len(seg)} segIndices for {num_points} points; the points must be the "
                         f"_vh_clean_2.ply vertices in file order")
    return consecutive(seg)


def load_segment_file(path, num_points: int) -> np.ndarray:
    """Labels ``[N]`` from an existing per-point segment file: ``.npy`` or a raw int64 ``.bin``."""
    path = require_file(path, "segment file")
    seg = np.load(path) if path.suffix == ".npy" else np.fromfile(path, dtype=np.int64)
    seg = np.asarray(seg).reshape(-1)
    if len(seg) != num_points:
        raise ValueError(f"segment file {path}: {len(seg)} labels for {num_points} points")
    if not np.issubdtype(seg.dtype, np.integer):
        raise ValueError(f"segment file {path}: expected integer labels, got {seg.dtype}")
    return consecutive(seg.astype(np.int64))
