"""Part-labelled shapes with their knowledge units (PartDistill): the shape-set file and the dataset a point
student trains on inside the Runner."""
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Sequence

import numpy as np
from mmengine.dataset import BaseDataset

from pc_kd.registry import DATASETS, TRANSFORMS
from pc_kd.utils.io import atomic_write

from .synthetic.part_shapes import PART_CATEGORIES

SHAPE_SET_FIELDS = ("category", "points", "part", "units_per_shape", "unit_sizes", "unit_index", "unit_labels",
                    "unit_scores", "unit_correct")


@dataclass
class ShapeSet:
    """``points [S, N, 3]`` float32 (unit sphere), ``part [S, N]`` int64 (GT, for scoring and the supervised row
    only), and per shape its knowledge units: ``unit_points[s]`` (index arrays), ``unit_labels[s] [K_s]``,
    ``unit_scores[s] [K_s]`` (the predictor's confidences), ``unit_correct[s] [K_s]`` bool (known for a synthetic
    predictor only)."""
    category: str
    points: np.ndarray
    part: np.ndarray
    unit_points: List[List[np.ndarray]] = field(default_factory=list)
    unit_labels: List[np.ndarray] = field(default_factory=list)
    unit_scores: List[np.ndarray] = field(default_factory=list)
    unit_correct: List[np.ndarray] = field(default_factory=list)

    @property
    def num_parts(self) -> int:
        return len(PART_CATEGORIES[self.category])


def save_shape_set(data: ShapeSet, path) -> None:
    """One ``.npz`` of plain arrays (:data:`SHAPE_SET_FIELDS`; the units flattened with offsets), written
    atomically."""
    flat = [p for shape in data.unit_points for p in shape]
    sizes = np.array([len(p) for p in flat], np.int64)
    arrays = dict(category=np.array(data.category), points=data.points, part=data.part,
                  units_per_shape=np.array([len(u) for u in data.unit_points], np.int64), unit_sizes=sizes,
                  unit_index=np.concatenate(flat) if flat else np.zeros(0, np.int64),
                  unit_labels=np.concatenate(data.unit_labels), unit_scores=np.concatenate(data.unit_scores),
                  unit_correct=np.concatenate(data.unit_correct))
    with atomic_write(Path(path)) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_shape_set(path) -> ShapeSet:
    """Read a :func:`save_shape_set` file (no pickle). A missing field or a category pc_kd does not know raises
    naming the file."""
    try:
        z = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, ValueError, OSError) as err:
        raise ValueError(f"shape set {path}: not a readable .npz ({err})") from None
    with z:
        missing = [k for k in SHAPE_SET_FIELDS if k not in z.files]
        if missing:
            raise KeyError(f"shape set {path}: missing fields {missing} (a shape-set file holds "
                           f"{list(SHAPE_SET_FIELDS)}, as pc_kd.datasets.save_shape_set writes)")
        category = str(z["category"])
        if category not in PART_CATEGORIES:
            raise ValueError(f"shape set {path}: category {category!r} is not one of {sorted(PART_CATEGORIES)}")
        per_shape = z["units_per_shape"]
        ends = np.cumsum(z["unit_sizes"])
        flat = np.split(z["unit_index"], ends[:-1]) if len(ends) else []
        bounds = np.concatenate([[0], np.cumsum(per_shape)]).astype(np.int64)
        sl = [slice(bounds[i], bounds[i + 1]) for i in range(len(per_shape))]
        return ShapeSet(category, z["points"], z["part"], [flat[x] for x in sl],
                        [z["unit_labels"][x] for x in sl], [z["unit_scores"][x] for x in sl],
                        [z["unit_correct"][x] for x in sl])


@DATASETS.register_module()
class PartUnitsDataset(BaseDataset):
    """The shapes of one category with their knowledge units, from a shape-set ``.npz`` (:func:`save_shape_set`;
    ``pc-kd demo-partdistill --shapes-only`` writes the synthetic ones).

    A sample (before the pipeline): ``points [N, 3]`` float32, ``pts_semantic_mask [N]`` int64 (the GT parts, read
    by the metric only), ``unit_points`` (K index arrays), ``unit_labels [K]`` int64, ``unit_scores [K]`` float32
    (the scores the loss weighs: the predictor's confidences, or backward distillation's re-scores after
    :meth:`set_unit_scores`), ``sample_idx``. ``metainfo``: ``category``, ``classes`` (part names), ``num_parts``.

    The data list is kept as Python objects (``serialize_data=False``) so that :meth:`set_unit_scores` reaches the
    next epoch's samples; data-loader workers see it when they are started again each epoch
    (``persistent_workers=False``, which ``BackwardDistillationHook`` checks).
    """

    METAINFO = dict(classes=())

    def __init__(self, ann_file: str = "", data_root: str = "", pipeline=(), test_mode: bool = False, **kwargs):
        kwargs["serialize_data"] = False
        super().__init__(ann_file=ann_file, data_root=data_root, test_mode=test_mode,
                         pipeline=[TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline], **kwargs)

    def load_data_list(self) -> List[dict]:
        if not Path(self.ann_file).is_file():
            raise FileNotFoundError(
                f"{type(self).__name__}: shape set {self.ann_file} not found (ann_file joined with data_root in the "
                f"config). The synthetic shape sets are written by `pc-kd demo-partdistill --shapes-only` into "
                f"work_dirs/demo_partdistill/")
        data = load_shape_set(self.ann_file)
        self._metainfo.update(category=data.category, classes=tuple(PART_CATEGORIES[data.category]),
                              num_parts=data.num_parts)
        return [dict(sample_idx=i, points=data.points[i].astype(np.float32), pts_semantic_mask=data.part[i],
                     unit_points=data.unit_points[i], unit_labels=data.unit_labels[i].astype(np.int64),
                     unit_scores=data.unit_scores[i].astype(np.float32))
                for i in range(len(data.points))]

    def set_unit_scores(self, scores: Sequence) -> None:
        """Replace every shape's unit scores (``scores[i] [K_i]``, shape i's units in file order): what the loss
        weighs from the next sample drawn on."""
        self.full_init()
        if len(scores) != len(self.data_list):
            raise ValueError(f"{type(self).__name__}.set_unit_scores: {len(scores)} score arrays for "
                             f"{len(self.data_list)} shapes")
        for i, (info, s) in enumerate(zip(self.data_list, scores)):
            s = np.asarray(s, np.float32).reshape(-1)
            if len(s) != len(info["unit_labels"]):
                raise ValueError(f"{type(self).__name__}.set_unit_scores: shape {i} has {len(info['unit_labels'])} "
                                 f"units, got {len(s)} scores")
            info["unit_scores"] = s
