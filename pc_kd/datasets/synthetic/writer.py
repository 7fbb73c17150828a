"""Write synthetic datasets to disk in the layouts of the real ones, resumably."""
import json
import logging
from pathlib import Path

import numpy as np
from mmengine.logging import print_log
from tqdm import tqdm

from pc_kd.structures.class_names import NUSCENES_CLASSES
from pc_kd.utils.io import atomic_write, dump_pickle_atomic

from ..converters.common import save_array, save_image, save_matrix, write_point_scene
from .driving import CAMERA_YAWS, SWEEP_DT, cam2ego_matrix, lidar2ego_matrix, make_driving_scene, render_camera, simulate_lidar
from .indoor import INDOOR_CLASSES, make_indoor_scene, render_views, sample_camera_poses


def _settings_tag(params: dict) -> str:
    """A short folder suffix for generator settings (image size, counts, seed), e.g. ``225x400_s0``."""
    parts = []
    if "image_hw" in params:
        parts.append("x".join(str(v) for v in params["image_hw"]))
    parts.append(f"s{params.get('seed', 0)}")
    return "_".join(parts)


def _check_params(root: Path, params: dict, kind: str):
    """Refuse to mix scenes generated with other parameters in one folder."""
    meta = root / f"{kind}_params.json"
    if meta.exists():
        old = json.loads(meta.read_text())
        if old != params:
            differ = ", ".join(f"{k}={old.get(k)!r} there, {params.get(k)!r} asked"
                               for k in sorted(set(old) | set(params)) if old.get(k) != params.get(k))
            raise ValueError(f"{meta}: the synthetic data in {root} was made with other settings ({differ}). Give "
                             f"this dataset its own folder (data_root='{root}_{_settings_tag(params)}'), or delete "
                             f"{root} to make it again with these settings (seconds to minutes)")
    else:
        root.mkdir(parents=True, exist_ok=True)
        with atomic_write(meta) as tmp:
            tmp.write_text(json.dumps(params, indent=1))


# driving frames of each split: sample seeds seed * 1000 + offset + i, i < limit, so that train, val and the
# held-out test frames (scored only after every setting was chosen on val) never share a frame
DRIVING_SPLITS = {"train": (0, 500), "val": (500, 250), "test": (750, 250)}


def driving_sample_seeds(split: str, num_samples: int, seed: int) -> list:
    """Sample seeds of ``num_samples`` frames of ``split`` ("train", "val" or "test"; see DRIVING_SPLITS)."""
    if split not in DRIVING_SPLITS:
        raise ValueError(f"synthetic driving: split={split!r} is not one of {list(DRIVING_SPLITS)}")
    offset, limit = DRIVING_SPLITS[split]
    if not 0 <= num_samples <= limit:
        raise ValueError(f"synthetic driving: num_samples={num_samples} for split {split!r} must be in 0..{limit} "
                         f"(more would reach the frames of the next split)")
    return [seed * 1000 + offset + i for i in range(num_samples)]


def indoor_intrinsic(image_hw) -> np.ndarray:
    """4x4 intrinsics of the synthetic RGB-D camera: ~60 degree horizontal field of view, centred."""
    h, w = image_hw
    K = np.eye(4)
    K[0, 0] = K[1, 1] = 0.87 * w
    K[0, 2], K[1, 2] = w / 2, h / 2
    return K


def write_indoor_dataset(root, split: str = "train", num_scenes: int = 4, seed: int = 0, num_views: int = 3,
                         image_hw=(240, 320), num_points: int = 20000) -> Path:
    """Generate ``num_scenes`` rooms under ``root`` in the ScanNet-processed layout and their info file.

    Layout::

        points/<scene>.bin (float32 x y z r g b)  semantic_mask/<scene>.bin (int64 class id)
        instance_mask/<scene>.bin                 posed_images/<scene>/<frame>.jpg|.txt|_depth.png|_label.png
        posed_images/<scene>/intrinsic.txt        synthetic_indoor_infos_<split>.pkl

    Scene seeds are ``seed * 1000 + i`` (train) and ``seed * 1000 + 500 + i`` (other splits). A scene whose
    points file exists is kept, so an interrupted run resumes. Returns the info file path.
    """
    root = Path(root)
    params = dict(seed=seed, num_views=num_views, image_hw=list(image_hw), num_points=num_points, version=3)
    _check_params(root, params, "synthetic_indoor")
    info_path = root / f"synthetic_indoor_infos_{split}.pkl"
    base = seed * 1000 + (0 if split == "train" else 500)
    K = indoor_intrinsic(image_hw)
    data_list = []
    todo = [base + i for i in range(num_scenes)]
    missing = [s for s in todo if not (root / "points" / f"scene{s:05d}.bin").exists()]
    if missing:
        print_log(f"generating {len(missing)} synthetic indoor scenes ({split}) in {root}", "current",
                  logging.INFO)
    for scene_seed in tqdm(todo, desc=f"synthetic indoor {split}", disable=not missing, leave=False):
        name = f"scene{scene_seed:05d}"
        scene = make_indoor_scene(scene_seed, num_points=num_points)
        rng = np.random.default_rng(scene_seed + 1)
        poses = sample_camera_poses(scene, num_views, rng)
        img_dir = root / "posed_images" / name
        if scene_seed in missing:
            rgb, depth, label = render_views(scene, poses, K, image_hw, scene_seed)
            save_matrix(K, img_dir / "intrinsic.txt")
            for v in range(num_views):
                save_image(rgb[v], img_dir / f"{v:05d}.jpg", quality=95)
                save_image(np.round(depth[v] * 1000).astype(np.uint16), img_dir / f"{v:05d}_depth.png")
                save_image(label[v], img_dir / f"{v:05d}_label.png")
                save_matrix(poses[v], img_dir / f"{v:05d}.txt")
            entry = write_point_scene(root, name, scene.points, scene.semantic, scene.instance)
        else:
            entry = {"lidar_points": {"lidar_path": f"{name}.bin", "num_pts_feats": 6},
                     "pts_semantic_mask_path": f"{name}.bin", "pts_instance_mask_path": f"{name}.bin"}
        entry.update(
            sample_idx=name, axis_align_matrix=np.eye(4).tolist(),
            instances=[{"bbox_3d": box.tolist(), "bbox_label_3d": int(lab)}
                       for box, lab in zip(scene.boxes, scene.box_labels)],
            images=[{"img_path": f"posed_images/{name}/{v:05d}.jpg",
                     "depth_path": f"posed_images/{name}/{v:05d}_depth.png",
                     "label_path": f"posed_images/{name}/{v:05d}_label.png",
                     "cam2world": poses[v].tolist(), "cam2img": K.tolist(), "depth_shift": 1000.0}
                    for v in range(num_views)])
        data_list.append(entry)
    metainfo = dict(dataset="synthetic_indoor", classes=INDOOR_CLASSES,
                    seg_raw_ids=tuple(range(len(INDOOR_CLASSES))), image_hw=tuple(image_hw), info_version="1.1")
    dump_pickle_atomic({"metainfo": metainfo, "data_list": data_list}, info_path)
    return info_path


def driving_intrinsic(image_hw) -> np.ndarray:
    """3x3 K of the synthetic surround cameras: nuScenes' ~64 degree horizontal field of view, centred."""
    h, w = image_hw
    return np.array([[0.79 * w, 0.0, w / 2], [0.0, 0.79 * w, h / 2], [0.0, 0.0, 1.0]])


def write_driving_dataset(root, split: str = "train", num_samples: int = 4, seed: int = 0,
                          image_hw=(225, 400), num_objects: int = 24, num_sweeps: int = 0) -> Path:
    """Generate ``num_samples`` driving key frames under ``root`` in the nuScenes layout.

    Layout::

        samples/LIDAR_TOP/<token>.bin (float32 x y z intensity ring, LiDAR frame)
        sweeps/LIDAR_TOP/<token>_<k>.bin (``num_sweeps`` earlier sweeps, SWEEP_DT seconds apart)
        samples/CAM_*/<token>.jpg      synthetic_driving_infos_<split>.pkl (mmdet3d v1.x format)

    Instances carry ``bbox_3d`` (LiDAR frame), ``bbox_label_3d``, ``velocity`` (LiDAR frame, m/s),
    ``attr_label`` (index into NUSCENES_ATTRIBUTES, -1 for none) and ``num_lidar_pts``; ``lidar_sweeps`` lists
    the earlier sweeps (``lidar_points.lidar_path``, ``lidar_points.lidar2sensor`` = key LiDAR -> sweep LiDAR,
    the identity here since the ego is static, and ``timestamp`` in seconds). Seeds and resumption as
    :func:`write_indoor_dataset` (a sample is complete when its key-frame LiDAR file exists, written last), except
    that the splits' frames are :func:`driving_sample_seeds`: train, val and a held-out test split never overlap.
    """
    root = Path(root)
    params = dict(seed=seed, image_hw=list(image_hw), num_objects=num_objects, num_sweeps=num_sweeps, version=2)
    _check_params(root, params, "synthetic_driving")
    todo = driving_sample_seeds(split, num_samples, seed)
    K = driving_intrinsic(image_hw)
    l2e = lidar2ego_matrix()
    missing = [s for s in todo if not (root / "samples" / "LIDAR_TOP" / f"synth{s:05d}.bin").exists()]
    if missing:
        print_log(f"generating {len(missing)} synthetic driving samples ({split}) in {root}", "current",
                  logging.INFO)
    data_list = []
    for sample_seed in tqdm(todo, desc=f"synthetic driving {split}", disable=not missing, leave=False):
        token = f"synth{sample_seed:05d}"
        scene = make_driving_scene(sample_seed, num_objects=num_objects)
        timestamp = float(sample_seed)
        images = {}
        for cam, yaw in CAMERA_YAWS.items():
            cam2ego = cam2ego_matrix(yaw)
            if sample_seed in missing:
                save_image(render_camera(scene, cam2ego, K, image_hw), root / "samples" / cam / f"{token}.jpg",
                           quality=95)
            images[cam] = dict(img_path=f"{token}.jpg", cam2img=K.tolist(), cam2ego=cam2ego.tolist(),
                               lidar2cam=(np.linalg.inv(cam2ego) @ l2e).tolist(), sample_data_token=f"{token}_{cam}",
                               timestamp=timestamp)
        sweeps = []
        for k in range(1, num_sweeps + 1):
            path = f"{token}_{k}.bin"
            if sample_seed in missing:
                save_array(simulate_lidar(scene, sample_seed, time_offset=-k * SWEEP_DT)[0],
                           root / "sweeps" / "LIDAR_TOP" / path, np.float32)
            sweeps.append(dict(lidar_points=dict(lidar_path=path, lidar2sensor=np.eye(4).tolist()),
                               timestamp=timestamp - k * SWEEP_DT, sample_data_token=f"{token}_sweep{k}"))
        points, target = simulate_lidar(scene, sample_seed)
        if sample_seed in missing:
            save_array(points, root / "samples" / "LIDAR_TOP" / f"{token}.bin", np.float32)
        ego2lidar = np.linalg.inv(l2e)
        boxes = scene.boxes_ego.copy()
        boxes[:, :3] = boxes[:, :3] @ ego2lidar[:3, :3].T + ego2lidar[:3, 3]
        boxes[:, 6] = np.arctan2(np.sin(boxes[:, 6] + np.pi / 2), np.cos(boxes[:, 6] + np.pi / 2))
        velocity = scene.velocity_ego @ ego2lidar[:2, :2].T
        counts = np.bincount(target, minlength=len(boxes) + 1)[1:]
        instances = [dict(bbox_3d=box.tolist(), bbox_label_3d=int(lab), velocity=v.tolist(), attr_label=int(a),
                          num_lidar_pts=int(n), bbox_3d_isvalid=bool(n > 0))
                     for box, lab, v, a, n in zip(boxes, scene.labels, velocity, scene.attr_labels, counts)]
        data_list.append(dict(token=token, sample_idx=token, timestamp=timestamp, lidar_sweeps=sweeps,
                              ego2global=scene.ego2global.tolist(), images=images, instances=instances,
                              lidar_points=dict(lidar_path=f"{token}.bin", num_pts_feats=5, lidar2ego=l2e.tolist())))
    metainfo = dict(dataset="synthetic_driving", classes=NUSCENES_CLASSES,
                    categories={c: i for i, c in enumerate(NUSCENES_CLASSES)}, image_hw=tuple(image_hw),
                    info_version="1.1")
    info_path = root / f"synthetic_driving_infos_{split}.pkl"
    dump_pickle_atomic({"metainfo": metainfo, "data_list": data_list}, info_path)
    return info_path
