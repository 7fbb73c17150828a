"""nuScenes tables (nuscenes-devkit) -> mmdet3d v1.x-format info file read by NuScenesDataset.

Per key frame: ``lidar_points`` (``lidar_path``, ``lidar2ego``), ``lidar_sweeps`` (up to 10 earlier sweeps, see
:func:`lidar_sweeps`), ``ego2global`` (at the LiDAR time), six
``images`` with ``cam2img`` (3x3 K), ``cam2ego`` and ``lidar2cam``, and ``instances`` with
``bbox_3d = [x, y, z, l, w, h, yaw]`` (LiDAR frame, geometric centre), ``bbox_label_3d`` (-1 outside the 10
detection classes), ``velocity`` (vx, vy in the LiDAR frame; NaN where the devkit has none), ``attr_label`` (the
annotation's attribute as an index into ``NUSCENES_ATTRIBUTES``, -1 without one), ``category_name``,
``num_lidar_pts``, ``num_radar_pts`` and ``bbox_3d_isvalid`` (LiDAR + radar points > 0, the devkit's filter).

``lidar2cam`` is motion compensated: LiDAR -> ego(t_lidar) -> global -> ego(t_camera) -> camera, because the
cameras fire up to ~43 ms before the LiDAR sweep ends (``inv(cam2ego) @ lidar2ego`` is off by up to 0.33 m).
"""
from pathlib import Path

import numpy as np
from pyquaternion import Quaternion
from tqdm import tqdm

from pc_kd.structures.class_names import NUSCENES_ATTRIBUTES, NUSCENES_CATEGORY_TO_CLASS, NUSCENES_CLASSES
from pc_kd.utils.io import dump_pickle_atomic

CAMERAS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")


def pose_matrix(record: dict) -> np.ndarray:
    """4x4 from a devkit record with ``rotation`` (w, x, y, z quaternion) and ``translation``."""
    mat = np.eye(4)
    mat[:3, :3] = Quaternion(record["rotation"]).rotation_matrix
    mat[:3, 3] = record["translation"]
    return mat


def _sensor_frames(nusc, sample_data_token: str):
    sd = nusc.get("sample_data", sample_data_token)
    calib = nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])
    ego = nusc.get("ego_pose", sd["ego_pose_token"])
    return sd, calib, pose_matrix(calib), pose_matrix(ego)


def lidar_sweeps(nusc, lidar_sd: dict, lidar2global: np.ndarray, max_sweeps: int = 10) -> list:
    """The LiDAR sweeps before a key frame (newest first, at most ``max_sweeps``, stopping at the previous key
    frame): ``lidar_points.lidar_path`` (file name, under ``sweeps/LIDAR_TOP``), ``lidar_points.lidar2sensor``
    (key-frame LiDAR -> that sweep's LiDAR, through the global frame at each sweep's own ego pose),
    ``timestamp`` (seconds) and ``sample_data_token``."""
    sweeps, sd = [], lidar_sd
    while len(sweeps) < max_sweeps and sd["prev"]:
        sd = nusc.get("sample_data", sd["prev"])
        if sd.get("is_key_frame"):
            break
        _, _, sweep2ego, sweep_ego2global = _sensor_frames(nusc, sd["token"])
        lidar2sensor = np.linalg.inv(sweep_ego2global @ sweep2ego) @ lidar2global
        sweeps.append(dict(lidar_points=dict(lidar_path=Path(sd["filename"]).name, lidar2sensor=lidar2sensor.tolist()),
                           timestamp=sd["timestamp"] / 1e6, sample_data_token=sd["token"]))
    return sweeps


def sample_info(nusc, sample: dict, max_sweeps: int = 10) -> dict:
    """Info entry of one key frame (see the module docstring)."""
    lidar_sd, _, lidar2ego, ego2global = _sensor_frames(nusc, sample["data"]["LIDAR_TOP"])
    lidar2global = ego2global @ lidar2ego
    images = {}
    for cam in CAMERAS:
        sd, calib, cam2ego, cam_ego2global = _sensor_frames(nusc, sample["data"][cam])
        cam2global = cam_ego2global @ cam2ego
        images[cam] = dict(img_path=Path(sd["filename"]).name, cam2img=np.array(calib["camera_intrinsic"]).tolist(),
                           cam2ego=cam2ego.tolist(), lidar2cam=(np.linalg.inv(cam2global) @ lidar2global).tolist(),
                           sample_data_token=sd["token"], timestamp=sd["timestamp"] / 1e6)
    _, boxes, _ = nusc.get_sample_data(lidar_sd["token"])  # boxes in the LiDAR frame at t_lidar
    global2lidar_rot = np.linalg.inv(lidar2global[:3, :3])
    instances = []
    attributes = {a["token"]: a["name"] for a in nusc.attribute}
    for box in boxes:
        ann = nusc.get("sample_annotation", box.token)
        names = [attributes[t] for t in ann["attribute_tokens"]]
        if len(names) > 1 or (names and names[0] not in NUSCENES_ATTRIBUTES):
            raise ValueError(f"sample_annotation {box.token}: attributes {names}; expected at most one of "
                             f"{list(NUSCENES_ATTRIBUTES)}")
        cls = NUSCENES_CATEGORY_TO_CLASS.get(ann["category_name"])
        velocity = nusc.box_velocity(box.token)  # global frame, NaN without neighbours
        velocity = (global2lidar_rot @ velocity)[:2] if np.isfinite(velocity).all() else np.full(2, np.nan)
        w, l, h = box.wlh
        instances.append(dict(
            bbox_3d=[*box.center.tolist(), float(l), float(w), float(h), float(box.orientation.yaw_pitch_roll[0])],
            bbox_label_3d=NUSCENES_CLASSES.index(cls) if cls else -1, velocity=velocity.tolist(),
            attr_label=NUSCENES_ATTRIBUTES.index(names[0]) if names else -1, category_name=ann["category_name"],
            num_lidar_pts=int(ann["num_lidar_pts"]), num_radar_pts=int(ann["num_radar_pts"]),
            bbox_3d_isvalid=bool(ann["num_lidar_pts"] + ann["num_radar_pts"] > 0), token=box.token))
    return dict(token=sample["token"], timestamp=sample["timestamp"] / 1e6, ego2global=ego2global.tolist(),
                lidar_points=dict(lidar_path=Path(lidar_sd["filename"]).name, num_pts_feats=5,
                                  lidar2ego=lidar2ego.tolist()),
                images=images, instances=instances,
                lidar_sweeps=lidar_sweeps(nusc, lidar_sd, lidar2global, max_sweeps))


def create_nuscenes_infos(root, out_dir, version: str = "v1.0-mini", split: str = "train") -> Path:
    """Write ``out_dir/nuscenes_infos_<split>.pkl`` for the key frames of ``split``.

    ``split``: ``train`` / ``val`` (the devkit's scene lists for ``version``: ``mini_train`` / ``mini_val``
    for v1.0-mini), ``test``, or ``all`` (every scene in the tables).
    """
    from nuscenes import NuScenes
    from nuscenes.utils.splits import create_splits_scenes

    root = Path(root)
    if not (root / version).is_dir():
        raise FileNotFoundError(f"{root / version} not found: expected the nuScenes tables (e.g. "
                                f"{version}/sample.json) under {root}")
    nusc = NuScenes(version=version, dataroot=str(root), verbose=False)
    if split == "all":
        scene_names = {s["name"] for s in nusc.scene}
    else:
        key = f"mini_{split}" if version.endswith("mini") and split in ("train", "val") else split
        scene_names = set(create_splits_scenes()[key])
    scene_tokens = {s["token"] for s in nusc.scene if s["name"] in scene_names}
    samples = [s for s in nusc.sample if s["scene_token"] in scene_tokens]
    data_list = []
    for i, sample in enumerate(tqdm(samples, desc=f"nuScenes {split}")):
        entry = sample_info(nusc, sample)
        entry["sample_idx"] = i
        data_list.append(entry)
    metainfo = dict(categories={c: i for i, c in enumerate(NUSCENES_CLASSES)}, dataset="nuscenes",
                    version=version, info_version="1.1")
    return dump_pickle_atomic({"metainfo": metainfo, "data_list": data_list},
                              Path(out_dir) / f"nuscenes_infos_{split}.pkl")
