"""ShapeNetPart readers: the official layout (``shapenetcore_partanno_segmentation_benchmark_v0_normal``) and
PartDistill's per-shape ``preprocess.h5`` (2D part predictions already turned into 3D knowledge units).

Official layout under ``root``::

    synsetoffset2category.txt                 "Airplane\\t02691156" per line
    <synset>/<id>.txt                         rows "x y z nx ny nz part" (part: global id 0..49)
    train_test_split/shuffled_{train,val,test}_file_list.json   ["shape_data/<synset>/<id>", ...]
"""
import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

# The 16 categories in the benchmark's order, with their synset and number of parts; a category's parts are
# the global ids PART_START[c] .. PART_START[c] + parts - 1 (50 in all).
SHAPENET_PART_CATEGORIES = (
    ("airplane", "02691156", 4), ("bag", "02773838", 2), ("cap", "02954340", 2), ("car", "02958343", 4),
    ("chair", "03001627", 4), ("earphone", "03261776", 3), ("guitar", "03467517", 3), ("knife", "03624134", 2),
    ("lamp", "03636649", 4), ("laptop", "03642806", 2), ("motorbike", "03790512", 6), ("mug", "03797390", 2),
    ("pistol", "03948459", 3), ("rocket", "04099429", 3), ("skateboard", "04225987", 3), ("table", "04379243", 3),
)
NUM_PARTS = {name: n for name, _, n in SHAPENET_PART_CATEGORIES}
PART_START = dict(zip(NUM_PARTS, np.cumsum([0] + [n for _, _, n in SHAPENET_PART_CATEGORIES])[:-1].tolist()))


def read_category_map(root) -> Dict[str, str]:
    """``{synset: category}`` (lower-case names) from ``root/synsetoffset2category.txt``."""
    path = Path(root) / "synsetoffset2category.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: root must be the ShapeNetPart folder "
                                f"(shapenetcore_partanno_segmentation_benchmark_v0_normal) that holds it")
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{path}:{n}: expected 'Category<TAB>synset', got {line!r}")
        out[fields[1]] = fields[0].lower()
    return out


def read_shapenet_part_split(root, split: str, categories: Optional[Sequence[str]] = None) -> List[dict]:
    """The shapes of ``split`` (``train``, ``val`` or ``test``), optionally only ``categories``.

    Returns one dict per shape: ``category``, ``shape_id``, ``points [n, 3]`` and ``normals [n, 3]`` float32,
    ``part_global [n]`` int64 (0..49) and ``part [n]`` int64 (0..parts-1 within the category). A row of another
    width or a part id outside the category's range raises, naming the file and the line."""
    root = Path(root)
    synsets = read_category_map(root)
    listing = root / "train_test_split" / f"shuffled_{split}_file_list.json"
    if not listing.is_file():
        raise FileNotFoundError(f"{listing} not found (split {split!r}: train, val or test)")
    wanted = None if categories is None else {c.lower() for c in categories}
    shapes = []
    for entry in json.loads(listing.read_text()):
        _, synset, shape_id = entry.split("/")
        category = synsets.get(synset)
        if category is None:
            raise ValueError(f"{listing}: {entry!r} names synset {synset}, which synsetoffset2category.txt lacks")
        if wanted is not None and category not in wanted:
            continue
        path = root / synset / f"{shape_id}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path} (listed in {listing.name}) not found")
        rows = np.loadtxt(path, dtype=np.float64, ndmin=2)
        if rows.shape[1] != 7:
            raise ValueError(f"{path}: expected rows 'x y z nx ny nz part' (7 columns), got {rows.shape[1]}")
        part = rows[:, 6].astype(np.int64)
        start, count = PART_START[category], NUM_PARTS[category]
        bad = np.nonzero((part < start) | (part >= start + count))[0]
        if len(bad):
            raise ValueError(f"{path}:{bad[0] + 1}: part {part[bad[0]]} is outside {category}'s parts "
                             f"{start}..{start + count - 1}")
        shapes.append(dict(category=category, shape_id=shape_id, points=rows[:, :3].astype(np.float32),
                           normals=rows[:, 3:6].astype(np.float32), part_global=part, part=part - start))
    return shapes


def read_partdistill_h5(path, category: str) -> dict:
    """One shape of PartDistill's ``preprocess.h5``: ``points [n, 3]`` (``xyz``), ``unit_scores [n, K]``
    (``max_p conf_bbox[i, k, p]``: unit k's confidence on its points, 0 elsewhere), ``unit_labels [K]``
    (``cls_bbox[0]``, the category's part ids) and ``part [n]`` (``gt_semantic_seg`` minus the category's first
    global part id). Needs h5py."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found")
    with h5py.File(path, "r") as f:
        missing = [k for k in ("xyz", "cls_bbox", "conf_bbox", "gt_semantic_seg") if k not in f]
        if missing:
            raise KeyError(f"{path}: missing datasets {missing}; a PartDistill preprocess.h5 has xyz, cls_view, "
                           f"conf_view, cls_bbox, conf_bbox, gt_semantic_seg")
        xyz, cls_bbox = np.asarray(f["xyz"], np.float32), np.asarray(f["cls_bbox"])
        conf_bbox, gt = np.asarray(f["conf_bbox"], np.float32), np.asarray(f["gt_semantic_seg"]).astype(np.int64)
    n = len(xyz)
    if (cls_bbox.ndim != 2 or cls_bbox.shape[0] != 1 or conf_bbox.ndim != 3
            or conf_bbox.shape[:2] != (n, cls_bbox.shape[1])):
        raise ValueError(f"{path}: expected cls_bbox [1, K] and conf_bbox [n, K, parts] with n = {n} points; got "
                         f"{cls_bbox.shape} and {conf_bbox.shape}")
    if gt.shape != (n,):
        raise ValueError(f"{path}: gt_semantic_seg has shape {gt.shape}, expected ({n},)")
    return dict(points=xyz, unit_scores=conf_bbox.max(-1) if conf_bbox.shape[1] else np.zeros((n, 0), np.float32),
                unit_labels=cls_bbox[0].astype(np.int64), part=gt - PART_START[category.lower()])
