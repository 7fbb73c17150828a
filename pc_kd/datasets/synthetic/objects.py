"""Synthetic single objects for masked point modelling (the CI stand-in for ShapeNet-55 pretraining and a
ModelNet40 / ScanObjectNN linear probe), and their depth renders for a 2D teacher.

Twelve classes: the seven furniture templates of the synthetic rooms (parts stretched by random proportions) and
five primitives (box, cylinder, cone, ellipsoid "sphere", torus). Every object is sampled on its surface, centred
on its bounding box, turned by a random angle about the up axis (z), scaled into the unit sphere, scaled once more
by ``U(0.8, 1)`` and jittered. Two variants imitate ScanObjectNN: ``scanned`` (its OBJ_BG: a slab of background
floor under the object, the half behind a random vertical plane partly occluded, a random dropout of points) and
``perturbed`` (its PB_T50_RS: the scanned object cut by its bounding box shifted by up to half its size, with a
fragment of a neighbouring object's surface inside). Everything is seeded: the same (class, seed, variant) gives
the same points.
"""
from typing import Sequence, Tuple

import numpy as np
import torch

from .indoor import _TEMPLATES
from .primitives import Part, sample_parts

FURNITURE_CLASSES = ("table", "chair", "bed", "sofa", "cabinet", "bookshelf", "lamp")
PRIMITIVE_CLASSES = ("box", "cylinder", "cone", "sphere", "torus")
OBJECT_CLASSES = FURNITURE_CLASSES + PRIMITIVE_CLASSES
# The pretraining pool and the probe's classes are disjoint: with the same classes, regressing a per-class text
# embedding in pretraining would be supervised learning of the probe's labels.
POOL_CLASSES = ("table", "bed", "bookshelf", "box", "sphere", "cone")
PROBE_CLASSES = ("chair", "sofa", "cabinet", "lamp", "cylinder", "torus")
VARIANTS = ("clean", "scanned", "perturbed")


def _furniture(name: str, rng: np.random.Generator, n: int) -> np.ndarray:
    stretch = rng.uniform(0.7, 1.4, 3)
    parts = []
    for center, size in _TEMPLATES[name]:
        size = np.asarray(size) * stretch * rng.uniform(0.85, 1.15, 3)
        parts.append(Part(np.asarray(center) * stretch, size, 0.0, 0, 1))
    return sample_parts(parts, n, rng)[0]


def _round_solid(name: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """Area-uniform samples of a cylinder, cone (side and base) or torus; an ellipsoid's by normalised normals."""
    r, h = rng.uniform(0.2, 0.6), rng.uniform(0.3, 1.2)
    phi = rng.uniform(0, 2 * np.pi, n)
    ring = np.stack([np.cos(phi), np.sin(phi)], 1)
    if name == "sphere":
        d = rng.normal(size=(n, 3))
        return d / np.linalg.norm(d, axis=1, keepdims=True) * rng.uniform(0.5, 1.0, 3)
    if name == "torus":
        big, small = rng.uniform(0.45, 0.8), rng.uniform(0.08, 0.3)
        theta = np.empty(0)
        while len(theta) < n:  # rejection: the outer side of the tube has more area
            t = rng.uniform(0, 2 * np.pi, 2 * n)
            theta = np.concatenate([theta, t[rng.uniform(0, 1, 2 * n) < (big + small * np.cos(t)) / (big + small)]])
        theta = theta[:n]
        rad = big + small * np.cos(theta)
        return np.concatenate([ring * rad[:, None], (small * np.sin(theta))[:, None]], 1)
    side = 2 * np.pi * r * h if name == "cylinder" else np.pi * r * np.hypot(r, h)
    caps = (2 if name == "cylinder" else 1) * np.pi * r * r
    on_side = rng.uniform(0, 1, n) < side / (side + caps)
    z = rng.uniform(0, 1, n)
    if name == "cone":
        z = 1 - np.sqrt(1 - z)  # area grows linearly towards the base
        rad = np.where(on_side, r * (1 - z), r * np.sqrt(rng.uniform(0, 1, n)))
        z = np.where(on_side, z * h, 0.0)
    else:
        rad = np.where(on_side, r, r * np.sqrt(rng.uniform(0, 1, n)))
        z = np.where(on_side, z * h, h * (rng.uniform(0, 1, n) < 0.5))
    return np.concatenate([ring * rad[:, None], z[:, None]], 1)


def _scanned(xyz: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ScanObjectNN-like: occlude part of the half behind a random vertical plane, drop 10 % of the points and
    add a floor slab under the object (about 20 % of the result)."""
    direction = rng.uniform(0, 2 * np.pi)
    side = xyz[:, :2] @ np.array([np.cos(direction), np.sin(direction)])
    keep = (side < rng.uniform(-0.1, 0.2)) | (rng.uniform(0, 1, len(xyz)) < 0.3)
    keep &= rng.uniform(0, 1, len(xyz)) > 0.1
    xyz = xyz[keep]
    lo, hi = xyz.min(0), xyz.max(0)
    pad = 0.25 * (hi - lo)[:2].max()
    m = max(1, len(xyz) // 4)
    floor = np.stack([rng.uniform(lo[0] - pad, hi[0] + pad, m), rng.uniform(lo[1] - pad, hi[1] + pad, m),
                      np.full(m, lo[2]) + rng.normal(0, 0.005, m)], 1)
    return np.concatenate([xyz, floor])


def _perturbed(xyz: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """PB_T50_RS-like: the scanned object plus a neighbouring box's face, cut by the object's bounding box shifted
    by up to 50 % of its size along x and y."""
    xyz = _scanned(xyz, rng)
    lo, hi = xyz.min(0), xyz.max(0)
    size = hi - lo
    side = rng.integers(0, 2) * 2 - 1
    face = np.stack([np.full(len(xyz) // 3, (hi[0] if side > 0 else lo[0]) + side * rng.uniform(0.05, 0.3) * size[0]),
                     rng.uniform(lo[1], hi[1], len(xyz) // 3), rng.uniform(lo[2], hi[2], len(xyz) // 3)], 1)
    xyz = np.concatenate([xyz, face])
    shift = rng.uniform(-0.5, 0.5, 3) * size * np.array([1.0, 1.0, 0.0])
    inside = np.all((xyz >= lo + shift - 1e-6) & (xyz <= hi + shift + 1e-6), axis=1)
    return xyz[inside] if inside.sum() >= 16 else xyz


def make_object(category: str, seed: int, num_points: int = 1024, variant: str = "clean") -> np.ndarray:
    """``[num_points, 3]`` float32 surface points of one object of ``category`` (:data:`OBJECT_CLASSES`) in the unit
    sphere, z up, seeded by ``(seed, class index, variant)``; ``variant`` one of :data:`VARIANTS`."""
    if category not in OBJECT_CLASSES:
        raise ValueError(f"make_object: unknown category {category!r}; known: {OBJECT_CLASSES}")
    if variant not in VARIANTS:
        raise ValueError(f"make_object: unknown variant {variant!r}; known: {VARIANTS}")
    rng = np.random.default_rng([seed, OBJECT_CLASSES.index(category), VARIANTS.index(variant)])
    n = 2 * num_points
    if category in FURNITURE_CLASSES:
        xyz = _furniture(category, rng, n)
    elif category == "box":
        xyz = sample_parts([Part(np.zeros(3), rng.uniform(0.3, 1.0, 3), 0.0, 0, 1)], n, rng)[0]
    else:
        xyz = _round_solid(category, rng, n)
    if variant == "scanned":
        xyz = _scanned(xyz, rng)
    elif variant == "perturbed":
        xyz = _perturbed(xyz, rng)
    xyz = xyz[rng.choice(len(xyz), num_points, replace=len(xyz) < num_points)]
    xyz = xyz - (xyz.max(0) + xyz.min(0)) / 2
    yaw = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(yaw), np.sin(yaw)
    xyz = xyz @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]).T
    xyz = xyz / np.linalg.norm(xyz, axis=1).max() * rng.uniform(0.8, 1.0)
    xyz = xyz + rng.normal(0, 0.005, xyz.shape)
    return xyz.astype(np.float32)


def make_object_set(classes: Sequence[str], per_class: int, seed: int, num_points: int = 1024,
                    variant: str = "clean") -> Tuple[np.ndarray, np.ndarray]:
    """``per_class`` objects of each of ``classes``: ``points [S, num_points, 3]`` float32 and ``labels [S]`` int64
    (index into ``classes``). Object ``i`` of a class is seeded by ``seed * 100003 + i``, so sets of different
    ``seed`` share no object."""
    points, labels = [], []
    for label, name in enumerate(classes):
        for i in range(per_class):
            points.append(make_object(name, seed * 100003 + i, num_points, variant))
            labels.append(label)
    return np.stack(points), np.asarray(labels, np.int64)


def render_depth(points: torch.Tensor, azimuth: torch.Tensor, elevation: torch.Tensor, size: int = 32
                 ) -> torch.Tensor:
    """Orthographic depth renders ``[B, 1, size, size]`` of ``points [B, N, 3]`` (unit sphere) seen from
    ``azimuth`` / ``elevation`` ``[B]`` (radians; the camera looks at the origin). A pixel holds the nearness
    ``1 - (depth + 1) / 2`` in [0, 1] of its nearest point (a point z-buffer, one pixel per point), 0 where no point
    falls; image rows run from the top (+up) down."""
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"render_depth: points must be [B, N, 3], got {tuple(points.shape)}")
    b, n, _ = points.shape
    ca, sa, ce, se = azimuth.cos(), azimuth.sin(), elevation.cos(), elevation.sin()
    forward = torch.stack([-ca * ce, -sa * ce, -se], 1)  # from the camera towards the origin, [B, 3]
    right = torch.stack([-sa, ca, torch.zeros_like(sa)], 1)
    up = torch.cross(right, forward, dim=1)
    u, v = (points @ right[:, :, None])[..., 0], (points @ up[:, :, None])[..., 0]
    depth = (points @ forward[:, :, None])[..., 0]  # [-1, 1], smaller is nearer
    col = ((u + 1) / 2 * size).long().clamp(0, size - 1)
    row = ((1 - v) / 2 * size).long().clamp(0, size - 1)
    flat = torch.arange(b, device=points.device)[:, None] * size * size + row * size + col
    nearness = (1 - (depth + 1) / 2).clamp(0, 1)
    image = torch.zeros(b * size * size, dtype=points.dtype, device=points.device)
    image = image.scatter_reduce(0, flat.reshape(-1), nearness.reshape(-1), reduce="amax", include_self=True)
    return image.reshape(b, 1, size, size)
