"""Synthetic driving scenes: ground, oriented objects of 5 classes, a rotating 32-beam LiDAR and 6 surround
cameras, written in the nuScenes layout (mmdet3d v1.x info file) and read by NuScenesDataset.

Frames: ego z = 0 on the ground; the LiDAR sits at (0.94, 0, 1.84) rotated -90 degrees about z (its x axis
points to the ego's right, as nuScenes' LIDAR_TOP). Boxes are stored in the LiDAR frame.
"""
from dataclasses import dataclass

import numpy as np

from pc_kd.evaluation.nuscenes_det import attribute_from_speed
from pc_kd.structures.class_names import NUSCENES_ATTRIBUTES, NUSCENES_CLASSES

from .raycast import raycast

# class -> nominal (l, w, h) in metres
OBJECTS = {
    "car": (4.6, 1.95, 1.7),
    "truck": (7.5, 2.6, 3.2),
    "pedestrian": (0.7, 0.7, 1.75),
    "traffic_cone": (0.45, 0.45, 0.8),
    "barrier": (0.5, 2.2, 1.0),
}
# every object draws its paint from this one pool, whatever its class (a red car and a red truck both exist)
PAINTS = np.array([[200, 40, 40], [230, 190, 40], [40, 90, 220], [250, 120, 20], [230, 230, 230], [35, 35, 40],
                   [150, 150, 160], [40, 150, 70], [120, 60, 160], [90, 60, 40]], dtype=np.float64)
# the parts of each class in box units: (centre x, y, z as fractions of l, w, h; size fractions; shade). The
# fronts differ from the backs (a car's cabin sits behind its hood, a truck's cab is lower than its cargo box,
# a pedestrian carries a backpack), so the heading is observable; cones and barriers are symmetric.
PARTS = {
    "car": [(0.0, 0.0, -0.2, 1.0, 1.0, 0.6, 1.0), (-0.12, 0.0, 0.3, 0.5, 0.9, 0.4, 0.35)],
    "truck": [(-0.13, 0.0, 0.0, 0.74, 1.0, 1.0, 1.0), (0.37, 0.0, -0.125, 0.24, 0.95, 0.75, 0.6)],
    "pedestrian": [(0.15, 0.0, 0.0, 0.5, 0.8, 1.0, 1.0), (-0.3, 0.0, 0.15, 0.35, 0.6, 0.4, 0.5)],
    "traffic_cone": [(0.0, 0.0, -0.4, 1.0, 1.0, 0.2, 1.0), (0.0, 0.0, 0.1, 0.55, 0.55, 0.8, 1.0)],
    "barrier": [(0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0)],
}
# a finer build of each class for image-only tasks (make_driving_scene(detailed=True)): the same boxes as PARTS
# where they carry the class's outline, plus what tells the classes apart by look rather than by paint (all shades
# of the object's own paint): dark wheels on cars (4) and trucks (6), a band along a truck's cargo box, legs, a
# torso and a head on pedestrians, dark bands on cones, alternating stripes along a barrier
_CAR_WHEELS = [(fx, fy, -0.4, 0.16, 0.08, 0.22, 0.12) for fx in (-0.3, 0.3) for fy in (-0.5, 0.5)]
_TRUCK_WHEELS = [(fx, fy, -0.42, 0.09, 0.08, 0.17, 0.12) for fx in (-0.4, -0.2, 0.37) for fy in (-0.5, 0.5)]
DETAILED_PARTS = {
    "car": PARTS["car"] + _CAR_WHEELS,
    "truck": PARTS["truck"] + [(-0.13, 0.0, 0.1, 0.745, 1.01, 0.12, 0.45)] + _TRUCK_WHEELS,
    "pedestrian": [(0.1, 0.0, -0.3, 0.45, 0.7, 0.4, 0.45), (0.1, 0.0, 0.1, 0.5, 0.8, 0.4, 1.0),
                   (0.1, 0.0, 0.4, 0.35, 0.45, 0.2, 0.8), (-0.3, 0.0, 0.15, 0.35, 0.6, 0.4, 0.5)],
    "traffic_cone": PARTS["traffic_cone"] + [(0.0, 0.0, 0.05, 0.6, 0.6, 0.12, 0.25),
                                             (0.0, 0.0, 0.3, 0.5, 0.5, 0.1, 0.25)],
    "barrier": [(0.0, fy, 0.0, 1.0, 0.2, 1.0, 1.0 if k % 2 == 0 else 0.4)
                for k, fy in enumerate((-0.4, -0.2, 0.0, 0.2, 0.4))],
}
MOVABLE_SPEED = {"car": 10.0, "truck": 8.0, "pedestrian": 1.5}  # maximum speed (m/s) of a moving object
SWEEP_DT = 0.5  # seconds between the previous LiDAR sweep and the key frame
CAMERA_YAWS = {"CAM_FRONT": 0.0, "CAM_FRONT_RIGHT": -55.0, "CAM_FRONT_LEFT": 55.0, "CAM_BACK": 180.0,
               "CAM_BACK_LEFT": 110.0, "CAM_BACK_RIGHT": -110.0}
BEAM_ELEVATIONS_DEG = np.linspace(-30.67, 10.67, 32)


def lidar2ego_matrix() -> np.ndarray:
    mat = np.eye(4)
    mat[:3, :3] = [[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    mat[:3, 3] = (0.94, 0.0, 1.84)
    return mat


def cam2ego_matrix(yaw_deg: float) -> np.ndarray:
    """OpenCV camera at 1.6 m on the roof, looking along ego heading ``yaw_deg`` (0 = forward)."""
    yaw = np.radians(yaw_deg)
    forward = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    right = np.array([np.sin(yaw), -np.cos(yaw), 0.0])
    mat = np.eye(4)
    mat[:3, :3] = np.stack([right, [0.0, 0.0, -1.0], forward], 1)
    mat[:3, 3] = np.array([1.0, 0.0, 1.6]) + 0.8 * forward
    return mat


@dataclass
class DrivingScene:
    """One synthetic key frame in the ego frame (ego static, z = 0 on the ground).

    ``boxes_ego [K, 7]`` (x y z l w h yaw, geometric centre), ``labels [K]`` (NUSCENES_CLASSES index),
    ``velocity_ego [K, 2]`` (m/s), ``attr_labels [K]`` (NUSCENES_ATTRIBUTES index, -1 for cones and barriers),
    ``paint [K, 3]`` (RGB 0..255 of each object), ``ego2global [4, 4]``.
    """

    boxes_ego: np.ndarray
    labels: np.ndarray
    velocity_ego: np.ndarray
    attr_labels: np.ndarray
    paint: np.ndarray
    ego2global: np.ndarray
    detailed: bool = False  # build the objects of DETAILED_PARTS instead of PARTS

    def parts(self, time_offset: float = 0.0):
        """The boxes the objects are built of, at ``time_offset`` seconds from the key frame (objects move with
        their velocity): ``parts [P, 7]`` (ego frame), ``owner [P]`` (object index), ``shade [P]``."""
        parts, owner, shade = [], [], []
        build = DETAILED_PARTS if self.detailed else PARTS
        for k, (x, y, z, l, w, h, yaw) in enumerate(self.boxes_ego):
            c, s = np.cos(yaw), np.sin(yaw)
            x, y = x + self.velocity_ego[k, 0] * time_offset, y + self.velocity_ego[k, 1] * time_offset
            for fx, fy, fz, fl, fw, fh, sh in build[NUSCENES_CLASSES[self.labels[k]]]:
                px, py = fx * l, fy * w
                parts.append([x + c * px - s * py, y + s * px + c * py, z + fz * h, fl * l, fw * w, fh * h, yaw])
                owner.append(k)
                shade.append(sh)
        return np.array(parts).reshape(-1, 7), np.array(owner, np.int64), np.array(shade)


def _attribute(name: str, speed: float) -> int:
    """``attr_label`` by the nuScenes 0.2 m/s rule (the one its metric applies to predictions); -1 for none."""
    attribute = attribute_from_speed(name, speed)
    return NUSCENES_ATTRIBUTES.index(attribute) if attribute else -1


def make_driving_scene(seed: int, num_objects: int = 24, extent: float = 45.0, detailed: bool = False
                       ) -> DrivingScene:
    """Objects placed without overlap on the ground within ``extent`` metres, none on the ego vehicle. Half the
    cars, trucks and pedestrians move (speed up to MOVABLE_SPEED along their heading), the rest stand still.
    ``detailed``: the objects are built of DETAILED_PARTS (the placement is the same)."""
    rng = np.random.default_rng(seed)
    names = list(OBJECTS)
    weights = np.array([0.45, 0.1, 0.25, 0.1, 0.1])
    boxes, labels, velos, attrs, paint, placed = [], [], [], [], [], []
    for _ in range(num_objects * 20):
        if len(boxes) == num_objects:
            break
        name = names[rng.choice(len(names), p=weights)]
        l, w, h = np.array(OBJECTS[name]) * rng.uniform(0.9, 1.1)
        x, y = rng.uniform(-extent, extent, 2)
        radius = np.hypot(l, w) / 2
        if np.hypot(x - 1.0, y) < radius + 4.0 or any(np.hypot(x - px, y - py) < radius + pr + 0.3
                                                       for px, py, pr in placed):
            continue
        yaw = rng.uniform(-np.pi, np.pi)
        placed.append((x, y, radius))
        boxes.append([x, y, h / 2, l, w, h, yaw])
        labels.append(NUSCENES_CLASSES.index(name))
        moving = name in MOVABLE_SPEED and rng.random() < 0.5
        speed = rng.uniform(0.5, MOVABLE_SPEED[name]) if moving else 0.0
        velos.append([speed * np.cos(yaw), speed * np.sin(yaw)])
        attrs.append(_attribute(name, speed))
        paint.append(PAINTS[rng.integers(len(PAINTS))] * rng.uniform(0.85, 1.1))
    yaw = rng.uniform(-np.pi, np.pi)
    ego2global = np.eye(4)
    ego2global[:3, :3] = [[np.cos(yaw), -np.sin(yaw), 0], [np.sin(yaw), np.cos(yaw), 0], [0, 0, 1]]
    ego2global[:3, 3] = (rng.uniform(300, 1500), rng.uniform(300, 1500), 0.0)
    return DrivingScene(np.array(boxes).reshape(-1, 7), np.array(labels, np.int64), np.array(velos).reshape(-1, 2),
                        np.array(attrs, np.int64), np.clip(np.array(paint).reshape(-1, 3), 0, 255), ego2global,
                        detailed)


def simulate_lidar(scene: DrivingScene, seed: int, azimuth_step_deg: float = 0.4, max_range: float = 70.0,
                   time_offset: float = 0.0):
    """Rotating 32-beam LiDAR at ``time_offset`` seconds from the key frame (objects moved by their velocity).
    Returns ``points [N, 5]`` float32 in the LiDAR frame (x y z intensity ring) and ``target [N]`` (0 ground,
    k + 1 object k). Intensity follows the paint's brightness (bright paint reflects more), not the class."""
    rng = np.random.default_rng([seed + 17, int(round(abs(time_offset) * 1000))])
    l2e = lidar2ego_matrix()
    az = np.radians(np.arange(0.0, 360.0, azimuth_step_deg))
    el = np.radians(BEAM_ELEVATIONS_DEG)
    ring, azg = np.meshgrid(np.arange(len(el)), az, indexing="ij")
    dirs_lidar = np.stack([np.cos(el[ring]) * np.cos(azg), np.cos(el[ring]) * np.sin(azg), np.sin(el[ring])],
                          -1).reshape(-1, 3)
    dirs = dirs_lidar @ l2e[:3, :3].T
    origins = np.broadcast_to(l2e[:3, 3], dirs.shape)
    parts, owner, shade = scene.parts(time_offset)
    hits = raycast(origins, dirs, parts, max_range=max_range)
    ok = np.isfinite(hits.t)
    t = hits.t[ok] + rng.normal(0, 0.01, ok.sum())
    xyz = dirs_lidar[ok] * t[:, None]
    target = np.where(hits.target[ok] > 0, owner[np.maximum(hits.target[ok] - 1, 0)] + 1, hits.target[ok])
    part_intensity = 20.0 + 0.5 * scene.paint.mean(1)[owner] * shade
    base = np.concatenate([[15.0], part_intensity])
    intensity = np.clip(base[hits.target[ok]] + rng.normal(0, 5, len(t)), 0, 255)
    points = np.concatenate([xyz, intensity[:, None], ring.reshape(-1)[ok][:, None]], 1).astype(np.float32)
    return points, target


# the per-pixel classes of a camera image (render_camera(..., with_classes=True)): the ground, then each object
# class; the sky has no class (PIXEL_IGNORE)
PIXEL_CLASSES = ("ground",) + tuple(OBJECTS)
PIXEL_IGNORE = 255


def render_camera(scene: DrivingScene, cam2ego: np.ndarray, K: np.ndarray, image_hw, with_classes: bool = False):
    """Ray-cast RGB image ``[H, W, 3]`` uint8: shaded object paint (darker cabins / backpacks), striped grey
    ground, sky gradient. With ``with_classes`` also the class of each pixel ``[H, W]`` uint8 (an index into
    PIXEL_CLASSES, from the ray's hit: the ground or the object that owns the part hit; PIXEL_IGNORE for the
    sky)."""
    h, w = image_hw
    v, u = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    rays_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1).reshape(-1, 3)
    dirs = rays_cam @ cam2ego[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    origins = np.broadcast_to(cam2ego[:3, 3], dirs.shape)
    parts, owner, part_shade = scene.parts()
    hits = raycast(origins, dirs, parts, max_range=150.0)
    sky = np.array([150.0, 190.0, 235.0]) * (0.8 + 0.2 * np.clip(-dirs[:, 2:3] * 3 + 0.5, 0, 1))
    colours = np.concatenate([[[110.0, 110.0, 110.0]], scene.paint[owner] * part_shade[:, None]])
    rgb = colours[np.maximum(hits.target, 0)]
    light = np.array([0.3, 0.2, 0.93])
    shade = 0.55 + 0.45 * np.clip(hits.normal @ light / np.linalg.norm(light), 0, 1)
    ground = hits.target == 0
    p = origins[ground] + dirs[ground] * hits.t[ground, None]
    stripes = 0.85 + 0.15 * ((np.floor(p[:, 0] / 2.0) + np.floor(p[:, 1] / 2.0)) % 2)
    rgb = rgb * shade[:, None]
    rgb[ground] *= stripes[:, None]
    rgb[hits.target < 0] = sky[hits.target < 0]
    rgb = np.clip(rgb, 0, 255).astype(np.uint8).reshape(h, w, 3)
    if not with_classes:
        return rgb
    object_class = np.array([PIXEL_CLASSES.index(NUSCENES_CLASSES[k]) for k in scene.labels], np.uint8)
    classes = np.concatenate([[0], object_class[owner]]).astype(np.uint8)[np.maximum(hits.target, 0)]
    classes[hits.target < 0] = PIXEL_IGNORE
    return rgb, classes.reshape(h, w)
