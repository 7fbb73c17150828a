"""Materials and Lambertian shading for synthetic rooms: appearance that does not name the class.

A :class:`Material` is a base colour and a procedural pattern. Every furniture instance draws its material
from one pool shared by all furniture classes (wood, fabric, metal, paint, leather, plastic) with a random
colour inside that material's range; floor, walls and ceiling draw from pools that overlap it (a wooden floor,
a painted wall, a painted cabinet). The recorded colour of a surface point is ``albedo x shade``, with
``shade = ambient + (1 - ambient) |n . l|`` for the room's light direction ``l`` and the surface normal ``n``:
the same for the point cloud and for every camera (diffuse light does not depend on the viewpoint), so images
and point colours agree, and a 2D network can see shape from the shading.
"""
import colorsys
from dataclasses import dataclass
from typing import Sequence

import numpy as np

# name: ((hue lo, hue hi) in turns, (saturation lo, hi), (value lo, hi), pattern)
MATERIALS = {
    "wood": ((0.04, 0.11), (0.35, 0.75), (0.30, 0.80), "grain"),
    "fabric": ((0.0, 1.0), (0.15, 0.70), (0.30, 0.85), "weave"),
    "metal": ((0.0, 1.0), (0.0, 0.08), (0.40, 0.85), "brushed"),
    "paint": ((0.0, 1.0), (0.0, 0.55), (0.45, 0.95), "flat"),
    "leather": ((0.0, 0.12), (0.35, 0.80), (0.15, 0.55), "speckle"),
    "plastic": ((0.0, 1.0), (0.45, 0.90), (0.45, 0.90), "flat"),
    "tile": ((0.0, 1.0), (0.0, 0.30), (0.55, 0.95), "tiles"),
    "concrete": ((0.0, 1.0), (0.0, 0.07), (0.45, 0.75), "speckle"),
    "wallpaper": ((0.0, 1.0), (0.10, 0.50), (0.50, 0.90), "stripes"),
}
FURNITURE_MATERIALS = ("wood", "fabric", "metal", "paint", "leather", "plastic")
FLOOR_MATERIALS = ("wood", "tile", "fabric", "concrete", "plastic")
WALL_MATERIALS = ("paint", "wallpaper", "concrete", "wood", "tile")
CEILING_MATERIALS = ("paint", "concrete", "tile", "wood")


@dataclass
class Material:
    """``color [3]`` albedo in 0..1, ``pattern`` name, ``scale`` (metres per pattern period), ``contrast``
    (0..1), ``direction [3]`` (unit vector the pattern varies along) and ``phase``."""

    color: np.ndarray
    pattern: str
    scale: float
    contrast: float
    direction: np.ndarray
    phase: float


def draw_material(pool: Sequence[str], rng: np.random.Generator) -> Material:
    """A material of a kind drawn uniformly from ``pool``, with its colour drawn inside the kind's range."""
    name = pool[int(rng.integers(len(pool)))]
    hue, sat, val, pattern = MATERIALS[name]
    color = np.array(colorsys.hsv_to_rgb(rng.uniform(*hue) % 1.0, rng.uniform(*sat), rng.uniform(*val)))
    direction = rng.normal(size=3)
    return Material(color, pattern, rng.uniform(0.15, 0.6), rng.uniform(0.08, 0.3),
                    direction / np.linalg.norm(direction), rng.uniform(0, 2 * np.pi))


def _hash_noise(cells: np.ndarray) -> np.ndarray:
    """Deterministic value noise in 0..1 per integer cell ``[n, 3]``."""
    h = np.sin(cells @ np.array([12.9898, 78.233, 37.719]) + 0.5) * 43758.5453
    return h - np.floor(h)


def pattern_values(xyz: np.ndarray, material: Material) -> np.ndarray:
    """``[n]`` multiplicative pattern around 1 for surface points ``xyz [n, 3]`` (metres, world frame)."""
    t = xyz @ material.direction / material.scale * 2 * np.pi + material.phase
    if material.pattern == "grain":
        wave = np.sin(t + 1.5 * np.sin(t / 3.7))
    elif material.pattern == "weave":
        fine = xyz / (material.scale * 0.1)
        wave = np.sin(fine[:, 0] * np.pi) * np.sin((fine[:, 1] + fine[:, 2]) * np.pi)
    elif material.pattern == "brushed":
        wave = np.sin(t * 6.0)
    elif material.pattern == "stripes":
        wave = np.sign(np.sin(t))
    elif material.pattern == "tiles":
        cell = np.floor(xyz / material.scale)
        wave = np.where(((xyz / material.scale) - cell < 0.06).any(1), -2.0, 2 * _hash_noise(cell) - 1)
    elif material.pattern == "speckle":
        wave = 2 * _hash_noise(np.floor(xyz / 0.03)) - 1
    else:  # flat
        wave = 0.3 * (2 * _hash_noise(np.floor(xyz / 0.1)) - 1)
    return 1.0 + material.contrast * wave


def shade(normals: np.ndarray, light: np.ndarray, ambient: float) -> np.ndarray:
    """``[n]`` Lambertian brightness ``ambient + (1 - ambient) |n . l|`` (two-sided: the light has no up)."""
    return ambient + (1.0 - ambient) * np.abs(normals @ light)


def surface_colors(xyz: np.ndarray, normals: np.ndarray, part_index: np.ndarray, part_materials: Sequence[int],
                   materials: Sequence[Material], light: np.ndarray, ambient: float, exposure: float) -> np.ndarray:
    """Recorded colour ``[n, 3]`` uint8 of surface points: material albedo x pattern x shading x exposure.

    Args:
        xyz, normals: ``[n, 3]`` positions (metres) and unit normals of the points (world frame).
        part_index: ``[n]`` the part each point lies on; ``part_materials[p]`` its index into ``materials``.
        light: ``[3]`` unit light direction of the room; ambient: share of light from no direction.
        exposure: brightness factor of the room's camera.
    """
    mat_of_point = np.asarray(part_materials, dtype=np.int64)[part_index]
    albedo = np.zeros((len(xyz), 3))
    for m in np.unique(mat_of_point):
        sel = mat_of_point == m
        albedo[sel] = materials[m].color * pattern_values(xyz[sel], materials[m])[:, None]
    color = albedo * (shade(normals, light, ambient) * exposure)[:, None]
    return np.clip(np.round(color * 255), 0, 255).astype(np.uint8)
