"""Synthetic indoor rooms seen by posed RGB-D cameras, written in the ScanNet (mmdet3d-processed) layout.

A room has floor, four walls and a ceiling plus furniture of seven classes built from oriented boxes. Colour
does not name the class: every furniture instance draws a material (wood, fabric, metal, paint, ...) from one
pool shared by all classes, floor / walls / ceiling draw from overlapping pools, and a per-room light shades
the surfaces by their normals (:mod:`.materials`), so only shape tells a table from a bed. Posed cameras inside
the room are rendered with a point z-buffer over a dense surface sampling: RGB (jpg), depth (uint16
millimetres, png, as ScanNet's ``depth/``) and a 2D label image (uint8 class ids, 255 = nothing). Everything
is seeded: the same seed gives the same files.
"""
from dataclasses import dataclass
from typing import List, Tuple

import numpy as np
import torch

from pc_kd.projection import project_points, splat_zbuffer

from .materials import (CEILING_MATERIALS, FLOOR_MATERIALS, FURNITURE_MATERIALS, WALL_MATERIALS, Material,
                        draw_material, surface_colors)
from .primitives import Part, face_areas, part_field, sample_parts

INDOOR_CLASSES = ("floor", "wall", "ceiling", "table", "chair", "bed", "sofa", "cabinet", "bookshelf", "lamp")

# Furniture templates: parts as (center, size) in the object frame (metres, z up, floor at z = 0).
_TEMPLATES = {
    "table": [((0, 0, 0.73), (1.2, 0.8, 0.04))] + [((sx * 0.55, sy * 0.35, 0.355), (0.05, 0.05, 0.71))
                                                  for sx in (-1, 1) for sy in (-1, 1)],
    "chair": [((0, 0, 0.45), (0.45, 0.45, 0.04)), ((-0.2, 0, 0.7), (0.04, 0.45, 0.5))]
    + [((sx * 0.2, sy * 0.2, 0.215), (0.04, 0.04, 0.43)) for sx in (-1, 1) for sy in (-1, 1)],
    "bed": [((0, 0, 0.25), (2.0, 1.4, 0.5)), ((-1.0, 0, 0.55), (0.06, 1.4, 1.1))],
    "sofa": [((0, 0, 0.21), (0.8, 1.8, 0.42)), ((-0.3, 0, 0.6), (0.2, 1.8, 0.4)),
             ((0.05, 0.85, 0.5), (0.7, 0.12, 0.2)), ((0.05, -0.85, 0.5), (0.7, 0.12, 0.2))],
    "cabinet": [((0, 0, 0.5), (0.5, 0.8, 1.0))],
    "bookshelf": [((0, 0, 0.9), (0.3, 0.9, 1.8))],
    "lamp": [((0, 0, 0.015), (0.3, 0.3, 0.03)), ((0, 0, 0.75), (0.03, 0.03, 1.5)), ((0, 0, 1.55), (0.35, 0.35, 0.3))],
}


@dataclass
class IndoorScene:
    """One room. ``points [N, 6]`` float32 (x y z in metres, world frame z up; r g b 0..255 as recorded under
    the room's light), ``normals [N, 3]``, ``semantic [N]`` / ``instance [N]`` int64, ``parts`` (the boxes),
    ``materials`` (``parts[i].material`` indexes it), ``boxes [M, 7]`` (x y z l w h yaw per furniture
    instance, geometric centre), ``box_labels [M]``, ``room_size (Lx, Ly, H)``, ``light [3]`` (unit
    direction), ``ambient`` and ``exposure`` of the room's lighting."""

    points: np.ndarray
    normals: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    parts: List[Part]
    materials: List[Material]
    boxes: np.ndarray
    box_labels: np.ndarray
    room_size: Tuple[float, float, float]
    light: np.ndarray
    ambient: float
    exposure: float

    def sample_surface(self, n: int, rng: np.random.Generator):
        """``n`` points on the room's surfaces: ``xyz [n, 3]``, ``normals [n, 3]``, ``rgb [n, 3]`` uint8 (as
        recorded), ``semantic [n]``, ``instance [n]``."""
        xyz, normals, part = sample_parts(self.parts, n, rng)
        rgb = surface_colors(xyz, normals, part, [p.material for p in self.parts], self.materials, self.light,
                             self.ambient, self.exposure)
        return xyz, normals, rgb, part_field(self.parts, part, "label"), part_field(self.parts, part, "instance")


def _room_shell(lx, ly, hz, t=0.05):
    """Floor (material 0), ceiling (1) and four walls (2) as slabs; only the face towards the inside carries
    samples."""
    cls = {name: i for i, name in enumerate(INDOOR_CLASSES)}
    return [
        Part(np.array([lx / 2, ly / 2, -t / 2]), np.array([lx, ly, t]), 0.0, cls["floor"], 0, (4,), 0),
        Part(np.array([lx / 2, ly / 2, hz + t / 2]), np.array([lx, ly, t]), 0.0, cls["ceiling"], 0, (5,), 1),
        Part(np.array([-t / 2, ly / 2, hz / 2]), np.array([t, ly, hz]), 0.0, cls["wall"], 0, (0,), 2),
        Part(np.array([lx + t / 2, ly / 2, hz / 2]), np.array([t, ly, hz]), 0.0, cls["wall"], 0, (1,), 2),
        Part(np.array([lx / 2, -t / 2, hz / 2]), np.array([lx, t, hz]), 0.0, cls["wall"], 0, (2,), 2),
        Part(np.array([lx / 2, ly + t / 2, hz / 2]), np.array([lx, t, hz]), 0.0, cls["wall"], 0, (3,), 2),
    ]


def _furniture_box(template, scale):
    """Bounding box (center, size) of a template in its own frame."""
    lo = np.min([np.array(c) - np.array(s) / 2 for c, s in template], axis=0) * scale
    hi = np.max([np.array(c) + np.array(s) / 2 for c, s in template], axis=0) * scale
    return (lo + hi) / 2, hi - lo


def make_indoor_scene(seed: int, num_points: int = 20000, min_objects: int = 7, max_objects: int = 12
                      ) -> IndoorScene:
    """Generate one room with at least one instance of every furniture class when room allows."""
    rng = np.random.default_rng(seed)
    lx, ly, hz = rng.uniform(4.5, 7.5), rng.uniform(4.5, 7.5), rng.uniform(2.6, 3.1)
    parts = _room_shell(lx, ly, hz)
    materials = [draw_material(pool, rng) for pool in (FLOOR_MATERIALS, CEILING_MATERIALS, WALL_MATERIALS)]
    furniture = list(INDOOR_CLASSES[3:])
    n_obj = int(rng.integers(min_objects, max_objects + 1))
    names = furniture + list(rng.choice(furniture, size=max(0, n_obj - len(furniture))))
    placed, boxes, box_labels = [], [], []
    for name in names:
        template = _TEMPLATES[name]
        scale = rng.uniform(0.85, 1.15)
        local_c, size = _furniture_box(template, scale)
        radius = np.linalg.norm(size[:2]) / 2
        for _ in range(50):  # rejection sampling against walls and placed objects (bounding circles)
            x, y = rng.uniform(radius + 0.05, lx - radius - 0.05), rng.uniform(radius + 0.05, ly - radius - 0.05)
            if all(np.hypot(x - px, y - py) > radius + pr + 0.1 for px, py, pr in placed):
                break
        else:
            continue
        yaw = rng.uniform(-np.pi, np.pi)
        placed.append((x, y, radius))
        label, inst = INDOOR_CLASSES.index(name), len(boxes) + 1
        materials.append(draw_material(FURNITURE_MATERIALS, rng))
        rot = Part(np.zeros(3), np.ones(3), yaw, 0, 0).rotation()
        for c, s in template:
            center = rot @ (np.array(c, dtype=np.float64) * scale) + np.array([x, y, 0.0])
            parts.append(Part(center, np.array(s, dtype=np.float64) * scale, yaw, label, inst,
                              material=len(materials) - 1))
        box_center = rot @ local_c + np.array([x, y, 0.0])
        boxes.append([*box_center, *size, yaw])
        box_labels.append(label)
    azimuth, elevation = rng.uniform(-np.pi, np.pi), rng.uniform(0.35, 1.2)
    light = np.array([np.cos(azimuth) * np.cos(elevation), np.sin(azimuth) * np.cos(elevation), np.sin(elevation)])
    scene = IndoorScene(np.zeros((0, 6), np.float32), np.zeros((0, 3)), np.zeros(0, np.int64),
                        np.zeros(0, np.int64), parts, materials, np.array(boxes, dtype=np.float64).reshape(-1, 7),
                        np.array(box_labels, dtype=np.int64), (lx, ly, hz), light, rng.uniform(0.35, 0.55),
                        rng.uniform(0.8, 1.15))
    xyz, scene.normals, rgb, scene.semantic, scene.instance = scene.sample_surface(num_points, rng)
    xyz += rng.normal(0, 0.003, size=xyz.shape)
    scene.points = np.concatenate([xyz, rgb.astype(np.float64)], 1).astype(np.float32)
    return scene


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """4x4 camera-to-world pose of an OpenCV camera at ``eye`` looking at ``target`` (world z up)."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, down, forward], 1)
    pose[:3, 3] = eye
    return pose


def sample_camera_poses(scene: IndoorScene, num_views: int, rng: np.random.Generator) -> np.ndarray:
    """``[V, 4, 4]`` camera-to-world poses at eye height inside the room, looking across it."""
    lx, ly, _ = scene.room_size
    poses = []
    for _ in range(num_views):
        eye = np.array([rng.uniform(0.4, lx - 0.4), rng.uniform(0.4, ly - 0.4), rng.uniform(1.3, 1.7)])
        target = np.array([lx - eye[0], ly - eye[1], 0.0]) + rng.normal(0, 0.5, 3)
        target[2] = rng.uniform(0.3, 1.0)
        poses.append(look_at(eye, target))
    return np.stack(poses)


def render_views(scene: IndoorScene, cam2world: np.ndarray, intrinsic: np.ndarray, image_hw: Tuple[int, int],
                 seed: int, density: float = 4000.0):
    """Render each pose with a point z-buffer over ``density`` surface points per square metre.

    Returns ``rgb [V, H, W, 3]`` uint8, ``depth [V, H, W]`` float32 metres (0 = no surface), ``label
    [V, H, W]`` uint8 (255 = no surface).
    """
    rng = np.random.default_rng(seed + 7919)
    area = sum(float(face_areas(p).sum()) for p in scene.parts)
    xyz, _, rgb, sem, _ = scene.sample_surface(int(area * density), rng)
    spacing = 1.0 / np.sqrt(density)
    h, w = image_hw
    K = np.eye(4)
    K[:3, :3] = intrinsic[:3, :3]
    lidar2img = torch.from_numpy(K[None] @ np.linalg.inv(cam2world))
    proj = project_points(torch.from_numpy(xyz), lidar2img, image_hw)
    out_rgb = np.zeros((len(cam2world), h, w, 3), np.uint8)
    out_depth = np.zeros((len(cam2world), h, w), np.float32)
    out_label = np.full((len(cam2world), h, w), 255, np.uint8)
    for v in range(len(cam2world)):
        depth = proj.depth[v]
        radius = torch.round(0.5 * intrinsic[0, 0] * spacing / depth.clamp(min=1e-3)).clamp(0, 3).long()
        zb = splat_zbuffer(proj.uv[v], depth, image_hw, radius, valid=depth > 0.05)
        hit = zb.index >= 0
        idx = zb.index[hit].numpy()
        out_rgb[v][hit.numpy()] = rgb[idx]
        out_depth[v][hit.numpy()] = zb.depth[hit].numpy()
        out_label[v][hit.numpy()] = sem[idx]
    return out_rgb, out_depth, out_label
