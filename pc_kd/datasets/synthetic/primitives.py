"""Oriented-box primitives and their surface sampling for synthetic scenes."""
from dataclasses import dataclass
from typing import Tuple

import numpy as np

ALL_FACES = (0, 1, 2, 3, 4, 5)  # face f lies on axis f // 2 at the + side (f even) or - side (f odd)


@dataclass
class Part:
    """One oriented box of a scene: ``center [3]``, ``size [3]`` (l, w, h), ``yaw`` (rad, about +z),
    semantic ``label``, ``instance`` id (0 = background stuff such as walls), the ``faces`` that carry
    surface samples (a room's floor, walls and ceiling show only their inner face) and the index of its
    ``material`` in the scene's material list."""

    center: np.ndarray
    size: np.ndarray
    yaw: float
    label: int
    instance: int
    faces: Tuple[int, ...] = ALL_FACES
    material: int = 0

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

    Returns ``xyz [n, 3]`` float64, ``normals [n, 3]`` (unit, pointing out of the sampled face) and
    ``part [n]`` int64 (index into ``parts``).
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
    local_normal = np.zeros((n, 3))
    local_normal[np.arange(n), axis] = 2 * sign
    normals = np.einsum("nij,nj->ni", rots, local_normal)
    return xyz, normals, part_idx.astype(np.int64)


def part_field(parts, part_idx: np.ndarray, name: str) -> np.ndarray:
    """``[n]`` int64: the field ``name`` (``label``, ``instance``, ``material``) of each sample's part."""
    return np.array([getattr(p, name) for p in parts], dtype=np.int64)[part_idx]
