"""Object classification readers for the linear-probe protocol of masked point modelling (ACT, ReCon): ModelNet40's
``modelnet40_ply_hdf5_2048`` files and ScanObjectNN's h5 files. Both need h5py.

ModelNet40 under ``root`` (``modelnet40_ply_hdf5_2048/``)::

    shape_names.txt                  40 class names, one per line (label i = line i)
    train_files.txt, test_files.txt  the h5 files of the split, one per line (any folder prefix; the file name is used)
    ply_data_train0.h5 ...           data [N, 2048, 3] float32, label [N, 1] uint8 (+ normal, faceId)

ScanObjectNN: one h5 file per split and variant (``main_split/training_objectdataset.h5``: OBJ_BG;
``main_split_nobg/``: OBJ_ONLY; ``*_augmentedrot_scale75.h5``: PB_T50_RS): data [N, 2048, 3] float32, label [N],
mask [N, 2048] (object point or background; optional).
"""
from pathlib import Path
from typing import Dict

import numpy as np


def _read_h5(path: Path, required, optional=()) -> Dict[str, np.ndarray]:
    import h5py

    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    with h5py.File(path, "r") as f:
        missing = [k for k in required if k not in f]
        if missing:
            raise KeyError(f"{path}: missing datasets {missing} (it has {sorted(f.keys())})")
        out = {k: np.asarray(f[k]) for k in (*required, *optional) if k in f}
    data = out["data"]
    if data.ndim != 3 or data.shape[2] < 3:
        raise ValueError(f"{path}: data has shape {data.shape}, expected [N, points, 3]")
    labels = out["label"].reshape(-1)
    if len(labels) != len(data):
        raise ValueError(f"{path}: {len(labels)} labels for {len(data)} shapes (label must be [N] or [N, 1])")
    out["data"], out["label"] = data[..., :3].astype(np.float32), labels.astype(np.int64)
    return out


def read_modelnet40_h5(root, split: str) -> dict:
    """``{"points": [N, 2048, 3] float32, "labels": [N] int64, "classes": [40 names]}`` of ``split`` (``train`` /
    ``test``) from the files its ``<split>_files.txt`` lists, in that order."""
    root = Path(root)
    if split not in ("train", "test"):
        raise ValueError(f"read_modelnet40_h5: split must be 'train' or 'test', got {split!r}")
    names_file, list_file = root / "shape_names.txt", root / f"{split}_files.txt"
    for path in (names_file, list_file):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: root must be the modelnet40_ply_hdf5_2048 folder (with "
                                    f"shape_names.txt, train_files.txt, test_files.txt and the ply_data_*.h5 files)")
    classes = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
    files = [root / Path(line.strip()).name for line in list_file.read_text().splitlines() if line.strip()]
    if not files:
        raise ValueError(f"{list_file} lists no h5 file")
    parts = [_read_h5(f, ("data", "label")) for f in files]
    labels = np.concatenate([p["label"] for p in parts])
    if len(labels) and (labels.min() < 0 or labels.max() >= len(classes)):
        raise ValueError(f"{root}: labels span {labels.min()}..{labels.max()} but shape_names.txt names "
                         f"{len(classes)} classes")
    return dict(points=np.concatenate([p["data"] for p in parts]), labels=labels, classes=classes)


def read_scanobjectnn_h5(path) -> dict:
    """``{"points": [N, 2048, 3] float32, "labels": [N] int64, "mask": [N, 2048] or None}`` of one ScanObjectNN
    h5 file."""
    out = _read_h5(Path(path), ("data", "label"), ("mask",))
    mask = out.get("mask")
    if mask is not None and mask.shape != out["data"].shape[:2]:
        raise ValueError(f"{path}: mask has shape {mask.shape}, expected {out['data'].shape[:2]}")
    return dict(points=out["data"], labels=out["label"], mask=mask)
