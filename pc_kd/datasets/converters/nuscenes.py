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
from pc_kd.utils.checks import DataError
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


TABLES = ("attribute", "calibrated_sensor", "category", "ego_pose", "instance", "log", "map", "sample",
          "sample_annotation", "sample_data", "scene", "sensor", "visibility")


def check_tables(root, version: str) -> Path:
    """``root/version`` after checking that it holds every devkit table; the errors say what is there instead."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--root {root}: no such folder (expected the nuScenes folder that holds "
                                f"{version}/, samples/ and sweeps/)")
    tables = root / version
    if not tables.is_dir():
        held = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "sample.json").is_file())
        hint = (f"it holds the tables of {held}: pass --version {held[0]}" if held else
                "it holds no table folder (v1.0-*/sample.json)")
        raise FileNotFoundError(f"{tables} not found: --version {version} names the folder of the tables; {hint}")
    missing = [f"{name}.json" for name in TABLES if not (tables / f"{name}.json").is_file()]
    if missing:
        raise FileNotFoundError(f"{tables}: missing the devkit tables {missing} (a nuScenes download's "
                                f"{version} metadata has all of {[t + '.json' for t in TABLES]})")
    return tables


def absent_files(nusc, root) -> dict:
    """Files that ``sample_data`` lists but ``root`` lacks, per group: ``{group: [filename, ...]}`` with groups
    ``lidar key frames``, ``camera key frames``, ``lidar sweeps``, ``camera sweeps`` and ``radar``."""
    root, out = Path(root), {}
    modality = {c["token"]: nusc.get("sensor", c["sensor_token"])["modality"] for c in nusc.calibrated_sensor}
    for sd in nusc.sample_data:
        kind = modality[sd["calibrated_sensor_token"]]
        group = "radar" if kind == "radar" else f"{kind} {'key frames' if sd['is_key_frame'] else 'sweeps'}"
        if not (root / sd["filename"]).is_file():
            out.setdefault(group, []).append(sd["filename"])
    return out


def report_absent_files(nusc, root, log=print) -> dict:
    """Say once which listed files are absent (see :func:`absent_files`) and what that means; returns them."""
    absent = absent_files(nusc, root)
    listed = len(nusc.sample_data)
    if not absent:
        log(f"nuScenes {nusc.version} at {root}: all {listed} files listed in sample_data are present")
        return absent
    parts = ", ".join(f"{group} {len(files)}" for group, files in sorted(absent.items()))
    log(f"nuScenes {nusc.version} at {root}: {sum(map(len, absent.values()))} of the {listed} files listed in "
        f"sample_data are absent ({parts}). pc_kd reads the key-frame LiDAR and camera files; the info files "
        f"still list each frame's LiDAR sweeps, and a config that loads sweeps (LoadPointsFromMultiSweeps) names "
        f"the absent ones and stops unless its dataset sets missing_sweeps='use_present'; radar is not read")
    return absent


def parse_split_scenes(specs) -> dict:
    """``["train=scene-0523", "val=scene-0916,scene-0917"]`` -> ``{"train": [...], "val": [...]}``."""
    out = {}
    for spec in specs:
        split, sep, names = spec.partition("=")
        if not sep or not split or not names:
            raise DataError(f"--split-scenes {spec!r}: expected <split>=<scene>[,<scene>...], e.g. "
                            f"train=scene-0523 val=scene-0916")
        out.setdefault(split, []).extend(n for n in names.split(",") if n)
    return out


def _chosen_scenes(nusc, version: str, split: str, scene_names=None) -> list:
    held = [s["name"] for s in nusc.scene]
    if scene_names is None:
        if split == "all":
            return held
        from nuscenes.utils.splits import create_splits_scenes

        key = f"mini_{split}" if version.endswith("mini") and split in ("train", "val") else split
        splits = create_splits_scenes()
        if key not in splits:
            raise DataError(f"--split {split}: not a devkit split of {version} (train, val, test, all), or give "
                            f"its scenes with --split-scenes {split}=<scene>,...")
        chosen = [n for n in held if n in set(splits[key])]
        if not chosen:
            raise DataError(f"the tables under {nusc.dataroot}/{version} hold no scene of the devkit's {key!r} "
                            f"split; they hold {held}: choose them with --split-scenes {split}=<scene>,...")
        return chosen
    unknown = [n for n in scene_names if n not in held]
    if unknown:
        raise DataError(f"split {split!r}: scenes {unknown} are not in the tables ({nusc.dataroot}/{version}); "
                        f"they hold {held}")
    return list(scene_names)


def create_nuscenes_infos(root, out_dir, version: str = "v1.0-mini", split: str = "train", scene_names=None,
                          skip_missing: bool = False, nusc=None, log=print) -> Path:
    """Write ``out_dir/nuscenes_infos_<split>.pkl`` for the key frames of ``split``.

    ``split``: ``train`` / ``val`` (the devkit's scene lists for ``version``: ``mini_train`` / ``mini_val``
    for v1.0-mini), ``test``, ``all`` (every scene in the tables), or any name when ``scene_names`` lists its
    scenes. A key frame whose LiDAR or camera file is absent stops the conversion with its name, unless
    ``skip_missing`` (then it is left out and named). ``nusc``: an open ``NuScenes`` of the same tables.
    """
    root = Path(root)
    check_tables(root, version)
    if nusc is None:
        from nuscenes import NuScenes

        nusc = NuScenes(version=version, dataroot=str(root), verbose=False)
    scenes = _chosen_scenes(nusc, version, split, scene_names)
    order = {name: i for i, name in enumerate(scenes)}
    scene_of = {s["token"]: s["name"] for s in nusc.scene if s["name"] in order}
    samples = sorted((s for s in nusc.sample if s["scene_token"] in scene_of),
                     key=lambda s: (order[scene_of[s["scene_token"]]], s["timestamp"]))
    data_list, skipped = [], []
    for sample in tqdm(samples, desc=f"nuScenes {split}"):
        files = [nusc.get("sample_data", token)["filename"] for channel, token in sample["data"].items()
                 if channel == "LIDAR_TOP" or channel in CAMERAS]
        absent = [f for f in files if not (root / f).is_file()]
        if absent:
            if not skip_missing:
                raise DataError(f"sample {sample['token']} ({scene_of[sample['scene_token']]}): {root / absent[0]} "
                                f"is missing ({len(absent)} of its LiDAR / camera files are); restore it, or pass "
                                f"--skip-missing to leave such samples out")
            skipped.append((sample["token"], absent[0]))
            continue
        entry = sample_info(nusc, sample)
        entry["sample_idx"] = len(data_list)
        entry["scene_name"] = scene_of[sample["scene_token"]]
        data_list.append(entry)
    if skipped:
        log(f"left out {len(skipped)} of {len(samples)} samples of split {split!r} with missing files (--skip-missing), "
            f"e.g. sample {skipped[0][0]}: {root / skipped[0][1]}")
    if not data_list:
        raise DataError(f"split {split!r} ({scenes}): no sample left to write")
    metainfo = dict(categories={c: i for i, c in enumerate(NUSCENES_CLASSES)}, dataset="nuscenes",
                    version=version, info_version="1.1", scenes=scenes)
    return dump_pickle_atomic({"metainfo": metainfo, "data_list": data_list},
                              Path(out_dir) / f"nuscenes_infos_{split}.pkl")


def create_nuscenes_split_infos(root, out_dir, version: str = "v1.0-mini", splits=("train",),
                                split_scenes: dict = None, skip_missing: bool = False, log=print) -> list:
    """:func:`create_nuscenes_infos` for several splits over one opening of the tables, after one report of the
    absent files (:func:`report_absent_files`). ``split_scenes``: ``{split: [scene, ...]}`` (then ``splits`` is
    its keys)."""
    from nuscenes import NuScenes

    check_tables(root, version)
    nusc = NuScenes(version=version, dataroot=str(root), verbose=False)
    report_absent_files(nusc, root, log)
    jobs = split_scenes.items() if split_scenes else [(split, None) for split in splits]
    return [create_nuscenes_infos(root, out_dir, version, split, names, skip_missing, nusc=nusc, log=log)
            for split, names in jobs]
