"""Part-labelled synthetic shapes (chairs, tables, lamps built of boxes with random proportions), their multi-view
renders, and a synthetic 2D part-box predictor with controlled faults: the CI stand-in for ShapeNetPart and a
GLIP-like detector in PartDistill.

A shape is sampled on its surface (2048 points by default), centred on its bounding box and scaled into the unit
sphere (ShapeNetPart's normalisation). Views look at the origin from a ring around it. Everything is seeded.
"""
from dataclasses import dataclass
from typing import Dict, List, Tuple

import numpy as np
import torch

from pc_kd.projection import project_points, zbuffer_visibility
from pc_kd.structures.part_units import PartBoxes, PartPredictionTeacher

from .indoor import look_at
from .primitives import Part, sample_parts

PART_CATEGORIES: Dict[str, Tuple[str, ...]] = {
    "chair": ("seat", "back", "leg", "arm"),
    "table": ("top", "leg", "support"),
    "lamp": ("base", "pole", "shade"),
}


def _box(parts: List[Part], label: int, center, size) -> None:
    parts.append(Part(np.asarray(center, float), np.asarray(size, float), 0.0, label, 1))


def _chair(rng: np.random.Generator) -> List[Part]:
    w, d, t, h = rng.uniform(0.4, 0.6), rng.uniform(0.4, 0.6), rng.uniform(0.03, 0.08), rng.uniform(0.38, 0.5)
    leg, back_t, back_h = rng.uniform(0.03, 0.06), rng.uniform(0.03, 0.07), rng.uniform(0.3, 0.6)
    parts: List[Part] = []
    _box(parts, 0, (0, 0, h - t / 2), (d, w, t))
    _box(parts, 1, (-d / 2 + back_t / 2, 0, h + back_h / 2), (back_t, w * rng.uniform(0.8, 1.0), back_h))
    inset = rng.uniform(0.0, 0.05)
    for sx in (-1, 1):
        for sy in (-1, 1):
            _box(parts, 2, (sx * (d / 2 - inset - leg / 2), sy * (w / 2 - inset - leg / 2), (h - t) / 2),
                 (leg, leg, h - t))
    if rng.random() < 0.5:  # arms: a rest on a post at each side
        rest_h, arm_t = rng.uniform(0.15, 0.28), rng.uniform(0.03, 0.06)
        for sy in (-1, 1):
            y = sy * (w / 2 + arm_t / 2)
            _box(parts, 3, (0, y, h + rest_h), (d * rng.uniform(0.7, 1.0), arm_t, arm_t))
            _box(parts, 3, (d * 0.3, y, h + rest_h / 2), (arm_t, arm_t, rest_h))
    return parts


def _table(rng: np.random.Generator) -> List[Part]:
    lx, ly, t, h = rng.uniform(0.8, 1.8), rng.uniform(0.5, 1.0), rng.uniform(0.03, 0.08), rng.uniform(0.6, 0.8)
    parts: List[Part] = []
    _box(parts, 0, (0, 0, h - t / 2), (lx, ly, t))
    if rng.random() < 0.7:  # four legs, maybe joined by stretchers or a shelf
        leg, inset = rng.uniform(0.04, 0.08), rng.uniform(0.0, 0.1)
        px, py = lx / 2 - inset - leg / 2, ly / 2 - inset - leg / 2
        for sx in (-1, 1):
            for sy in (-1, 1):
                _box(parts, 1, (sx * px, sy * py, (h - t) / 2), (leg, leg, h - t))
        kind = rng.random()
        z = rng.uniform(0.1, 0.3)
        if kind < 0.5:
            for sy in (-1, 1):
                _box(parts, 2, (0, sy * py, z), (2 * px, leg * 0.6, leg * 0.6))
        elif kind < 0.8:
            _box(parts, 2, (0, 0, z), (2 * px, 2 * py, rng.uniform(0.02, 0.04)))
    else:  # a pedestal on a cross foot
        col = rng.uniform(0.08, 0.16)
        _box(parts, 1, (0, 0, (h - t) / 2), (col, col, h - t))
        foot = rng.uniform(0.4, 0.7) * min(lx, ly)
        _box(parts, 2, (0, 0, 0.02), (foot, col * 0.8, 0.04))
        _box(parts, 2, (0, 0, 0.02), (col * 0.8, foot, 0.04))
    return parts


def _lamp(rng: np.random.Generator) -> List[Part]:
    r, bt = rng.uniform(0.15, 0.3), rng.uniform(0.02, 0.06)
    pole_w, pole_h = rng.uniform(0.02, 0.05), rng.uniform(0.8, 1.6)
    sw, sh = rng.uniform(0.2, 0.45), rng.uniform(0.15, 0.35)
    parts: List[Part] = []
    _box(parts, 0, (0, 0, bt / 2), (2 * r, 2 * r, bt))
    if rng.random() < 0.3:  # a bent pole: up, then sideways
        reach = rng.uniform(0.15, 0.35)
        _box(parts, 1, (0, 0, bt + pole_h / 2), (pole_w, pole_w, pole_h))
        _box(parts, 1, (reach / 2, 0, bt + pole_h), (reach, pole_w, pole_w))
        _box(parts, 2, (reach, 0, bt + pole_h - sh / 2), (sw, sw, sh))
    else:
        _box(parts, 1, (0, 0, bt + pole_h / 2), (pole_w, pole_w, pole_h))
        _box(parts, 2, (0, 0, bt + pole_h + sh * 0.3), (sw, sw, sh))
    return parts


_BUILDERS = {"chair": _chair, "table": _table, "lamp": _lamp}


@dataclass
class PartShape:
    """``points [N, 3]`` float32 in the unit sphere (centred on the bounding box), ``normals [N, 3]``, ``part [N]``
    int64 index into ``PART_CATEGORIES[category]``."""
    category: str
    points: np.ndarray
    normals: np.ndarray
    part: np.ndarray


def make_part_shape(category: str, seed: int, num_points: int = 2048) -> PartShape:
    """One shape of ``category`` (``chair``, ``table``, ``lamp``), seeded."""
    if category not in _BUILDERS:
        raise ValueError(f"make_part_shape: unknown category {category!r}; known: {sorted(_BUILDERS)}")
    rng = np.random.default_rng([seed, sorted(_BUILDERS).index(category)])
    parts = _BUILDERS[category](rng)
    xyz, normals, idx = sample_parts(parts, num_points, rng)
    xyz = xyz - (xyz.max(0) + xyz.min(0)) / 2
    xyz = xyz / np.linalg.norm(xyz, axis=1).max()
    labels = np.array([p.label for p in parts], np.int64)[idx]
    return PartShape(category, xyz.astype(np.float32), normals.astype(np.float32), labels)


def shape_views(num_views: int = 10, image_hw=(128, 128), distance: float = 2.2, fov_deg: float = 56.0,
                seed: int = 0) -> torch.Tensor:
    """``[V, 4, 4]`` world -> image matrices of ``num_views`` cameras on a ring around the origin (azimuths evenly
    spaced from a seeded offset, elevations alternating 15 and 40 degrees), the unit sphere filling the image."""
    rng = np.random.default_rng(seed)
    h, w = image_hw
    focal = 0.5 * min(h, w) / np.tan(np.radians(fov_deg) / 2)
    K = np.array([[focal, 0, w / 2, 0], [0, focal, h / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    start = rng.uniform(0, 2 * np.pi)
    mats = []
    for v in range(num_views):
        az, el = start + 2 * np.pi * v / num_views, np.radians(15.0 if v % 2 == 0 else 40.0)
        eye = distance * np.array([np.cos(az) * np.cos(el), np.sin(az) * np.cos(el), np.sin(el)])
        mats.append(K @ np.linalg.inv(look_at(eye, np.zeros(3))))
    return torch.as_tensor(np.stack(mats), dtype=torch.float32)


@dataclass
class ShapeViews:
    """What a 2D part predictor sees of a shape: ``uv [V, N, 2]`` pixel coordinates and ``visible [V, N]`` bool
    (z-buffer) of its points, ``world2img [V, 4, 4]``, ``image_hw``; ``part [N]`` is the GT, read only by the
    synthetic predictor (a real one reads rendered images)."""
    uv: torch.Tensor
    visible: torch.Tensor
    world2img: torch.Tensor
    image_hw: Tuple[int, int]
    part: torch.Tensor


def see_shape(shape: PartShape, world2img: torch.Tensor, image_hw=(128, 128), radius_px: int = 2) -> ShapeViews:
    points = torch.from_numpy(shape.points)
    proj = project_points(points, world2img, image_hw)
    visible = zbuffer_visibility(points, world2img, image_hw, radius_px=radius_px, depth_tol=0.02)
    return ShapeViews(proj.uv, visible, world2img, tuple(image_hw), torch.from_numpy(shape.part))


class SyntheticPartBoxPredictor(PartPredictionTeacher):
    """A GLIP stand-in with controlled faults. Per view and visible part (at least ``min_points`` visible points):
    a box around the part's visible points grown by ``grow`` (a fraction of its width and height, split over both
    sides), confidence ``U(conf)``; missed with probability ``miss``; given a wrong part label with probability
    ``wrong``, with the SAME confidence distribution (confidence cannot reveal it); and with probability
    ``whole_object`` per view one box around the whole visible shape with a random label (the 98 % rule's case).
    ``predict`` returns one :class:`PartBoxes` per view, ``correct`` telling which labels are right."""

    def __init__(self, num_parts: int, miss: float = 0.3, wrong: float = 0.2, grow=(0.1, 0.2), conf=(0.4, 0.9),
                 whole_object: float = 0.3, min_points: int = 5, seed: int = 0):
        self.num_parts, self.miss, self.wrong, self.grow, self.conf = num_parts, miss, wrong, grow, conf
        self.whole_object, self.min_points = whole_object, min_points
        self.rng = np.random.default_rng(seed)

    def _grown(self, uv: np.ndarray, hw) -> np.ndarray:
        lo, hi = uv.min(0), uv.max(0)
        pad = (hi - lo) * self.rng.uniform(*self.grow) / 2
        return np.concatenate([np.maximum(lo - pad, 0), np.minimum(hi + pad, [hw[1], hw[0]])])

    def predict(self, views: ShapeViews) -> List[PartBoxes]:
        out = []
        for v in range(views.uv.shape[0]):
            vis = views.visible[v].numpy()
            uv, part = views.uv[v].numpy()[vis], views.part.numpy()[vis]
            boxes, labels, scores, correct = [], [], [], []
            for p in np.unique(part):
                if (part == p).sum() < self.min_points or self.rng.random() < self.miss:
                    continue
                label = int(p)
                if self.rng.random() < self.wrong:
                    label = int(self.rng.choice([q for q in range(self.num_parts) if q != p]))
                boxes.append(self._grown(uv[part == p], views.image_hw))
                labels.append(label)
                scores.append(self.rng.uniform(*self.conf))
                correct.append(label == p)
            if len(uv) and self.rng.random() < self.whole_object:
                boxes.append(self._grown(uv, views.image_hw))
                labels.append(int(self.rng.integers(self.num_parts)))
                scores.append(self.rng.uniform(*self.conf))
                correct.append(False)
            out.append(PartBoxes(torch.as_tensor(np.array(boxes, np.float32).reshape(-1, 4)),
                                 torch.as_tensor(labels, dtype=torch.long),
                                 torch.as_tensor(scores, dtype=torch.float32),
                                 torch.as_tensor(correct, dtype=torch.bool)))
        return out
