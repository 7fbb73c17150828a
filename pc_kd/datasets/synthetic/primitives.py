"""Oriented-box primitives: surface sampling and per-class procedural textures for synthetic scenes."""
from dataclasses import dataclass
from typing import Tuple

import numpy as np

ALL_FACES = (0, 1, 2, 3, 4, 5)  # face f lies on axis f // 2 at the + side (f even) or - side (f odd)


@dataclass
class Part:
    """One oriented box of a scene: ``center [3]``, ``size [3]`` (l, w, h), ``yaw`` (rad, about +z),
    semantic ``label``, ``instance`` id (0 = background stuff such as walls) and the ``faces`` that carry
    surface samples (a room's floor, walls and ceiling show only their inner face)."""

    center: np.ndarray
    size: np.ndarray
    yaw: float
    label: int
    instance: int
    faces: Tuple[int, ...] = ALL_FACES

    def rotation(self) -> np.ndarray:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def face_areas(part: Part) -> np.ndarray:
    """``[6]`` area of each face that carries samples (0 for the others)."""
    l, w, h = part.size
    areas = np.array([w * h, w * h, l * h, l * h, l * w, l * w])
    mask = np.zeros(6)
    mask[list(part.faces)] = 1.0
    return areas * mask


def sample_parts(parts, n: int, rng: np.random.Generator):
    """Sample ``n`` points uniformly by area over the surfaces of ``parts``.

    Returns ``xyz [n, 3]`` float64, ``label [n]``, ``instance [n]`` int64.
    """
    areas = np.array([face_areas(p) for p in parts])  # [P, 6]
    flat = areas.ravel() / areas.sum()
    choice = rng.choice(len(flat), size=n, p=flat)
    part_idx, face = choice // 6, choice % 6
    uv = rng.uniform(-0.5, 0.5, size=(n, 3))
    axis = face // 2  # 0: x faces, 1: y faces, 2: z faces
    sign = np.where(face % 2 == 0, 0.5, -0.5)
    uv[np.arange(n), axis] = sign
    sizes = np.stack([p.size for p in parts])[part_idx]
    centers = np.stack([p.center for p in parts])[part_idx]
    rots = np.stack([p.rotation() for p in parts])[part_idx]
    xyz = np.einsum("nij,nj->ni", rots, uv * sizes) + centers
    labels = np.array([p.label for p in parts])[part_idx]
    instances = np.array([p.instance for p in parts])[part_idx]
    return xyz, labels.astype(np.int64), instances.astype(np.int64)


def texture(xyz: np.ndarray, labels: np.ndarray, palette: np.ndarray, instance_tint: np.ndarray = None):
    """Procedural colour ``[n, 3]`` uint8: class base colour x a position pattern (+ per-instance tint).

    The pattern depends on the class (checker floor tiles, wall stripes, wood-like grain), so images and
    point colours agree wherever the same surface point is seen.
    """
    base = palette[labels].astype(np.float64)
    x, y, z = xyz.T
    checker = ((np.floor(x / 0.5) + np.floor(y / 0.5)) % 2) * 0.25 + 0.75
    stripes = 0.85 + 0.15 * np.sin(2 * np.pi * (x + y) / 0.4)
    grain = 0.9 + 0.1 * np.sin(2 * np.pi * (3 * x + 5 * z) / 0.3) * np.cos(2 * np.pi * y / 0.7)
    pattern = np.where(labels == 0, checker, np.where(labels == 1, stripes, grain))
    color = base * pattern[:, None]
    if instance_tint is not None:
        color = color + instance_tint
    return np.clip(color, 0, 255).astype(np.uint8)
