"""Per-point labels and posed frames for nuScenes LiDAR key frames, from a detection info file (``create_infos``'s
``nuscenes_infos_<split>.pkl``): what image -> 3D fusion and point segmentation read.

Labels come from the 3D boxes: a point inside a box of one of :data:`BOX_POINT_CLASSES` (but ``other``) takes its
class (police cars, which the detection classes leave out, count as ``car``: :data:`EXTRA_CATEGORY_CLASSES`); every
other point (ground, buildings, vegetation, trailers, construction vehicles, debris, unannotated objects) is
``other``. Points on the ego vehicle itself (its body and the LiDAR's roof mount: :data:`EGO_VEHICLE_BOX`, a quarter
of every sweep) are no part of the scene and take ``IGNORE_INDEX`` (255), as nuScenes-lidarseg ignores its
``vehicle.ego`` points: no loss and no score counts them. The six cameras become posed frames of the point cloud's
own frame: ``cam2world = inv(lidar2cam)`` (the motion-compensated matrix of the info), ``cam2img`` the 3x3 K, so
:func:`pc_kd.projection.fuse_scene` projects each key frame's points into its six images.
"""
from pathlib import Path
from typing import Sequence

import numpy as np

from pc_kd.structures import Boxes3D
from pc_kd.structures.class_names import IGNORE_INDEX, NUSCENES_BOX_POINT_CLASSES
from pc_kd.utils.checks import DataError
from pc_kd.utils.io import dump_pickle_atomic, load_pickle, read_bin

from .common import save_array
from .nuscenes import CAMERAS

__all__ = ["BOX_POINT_CLASSES", "EGO_VEHICLE_BOX", "box_point_labels", "ego_vehicle_mask",
           "create_nuscenes_point_infos"]

BOX_POINT_CLASSES = NUSCENES_BOX_POINT_CLASSES
# nuScenes categories outside the detection classes that are plainly one of the point classes
EXTRA_CATEGORY_CLASSES = {"vehicle.emergency.police": "car"}
# The nuScenes car in its ego frame (origin: the rear axle's centre on the ground; x forward, y left, z up), metres:
# ``(x, y, z)`` min and max. The car is a Renault Zoe (4.1 m x 1.7 m x 1.6 m) with the LiDAR on a roof mount at 1.84 m;
# the box leaves a margin around the returns it gives, measured on both real scenes: x -0.5..3.0, |y| < 1.0, z
# 0.85..2.0, 31 % (scene-0523) and 24 % (scene-0916) of all points, practically none of them seen by a camera.
EGO_VEHICLE_BOX = ((-1.0, -1.1, -1.0), (3.5, 1.1, 2.5))


def box_point_labels(points: np.ndarray, instances: Sequence[dict], categories: Sequence[str],
                     classes: Sequence[str] = BOX_POINT_CLASSES) -> np.ndarray:
    """``[N]`` int64 index into ``classes`` of each point: the class of the first box containing it when that box's
    detection class (``categories[bbox_label_3d]``) is one of ``classes``, else ``classes.index('other')``.

    Args:
        points: ``[N, >= 3]`` x, y, z in the LiDAR frame (metres).
        instances: info ``instances`` with ``bbox_3d = [x, y, z, l, w, h, yaw]`` (LiDAR frame, geometric centre),
            ``bbox_label_3d`` (index into ``categories``; -1: not a detection class) and ``category_name``.
        categories: the info's detection classes in label order.
    """
    other = list(classes).index("other")
    labels = np.full(len(points), other, dtype=np.int64)
    named = [(inst, categories[inst["bbox_label_3d"]] if inst["bbox_label_3d"] >= 0
              else EXTRA_CATEGORY_CLASSES.get(inst.get("category_name"))) for inst in instances]
    wanted = [(inst, name) for inst, name in named if name in classes]
    if not wanted or not len(points):
        return labels
    boxes = Boxes3D(np.array([inst["bbox_3d"] for inst, _ in wanted], dtype=np.float64))
    box_class = np.array([list(classes).index(name) for _, name in wanted])
    inside = boxes.points_in_boxes(np.asarray(points[:, :3], dtype=np.float64)).numpy()
    labels[inside >= 0] = box_class[inside[inside >= 0]]
    return labels


def ego_vehicle_mask(points: np.ndarray, lidar2ego, box=EGO_VEHICLE_BOX) -> np.ndarray:
    """``[N]`` bool: the points inside ``box`` (the ego vehicle, in the ego frame: :data:`EGO_VEHICLE_BOX`).

    Args:
        points: ``[N, >= 3]`` x, y, z in the LiDAR frame (metres).
        lidar2ego: ``[4, 4]`` LiDAR -> ego transform (the info's ``lidar_points.lidar2ego``).
    """
    lidar2ego = np.asarray(lidar2ego, dtype=np.float64)
    if lidar2ego.shape != (4, 4):
        raise DataError(f"lidar2ego: expected a 4x4 matrix, got shape {lidar2ego.shape}")
    ego = np.asarray(points[:, :3], dtype=np.float64) @ lidar2ego[:3, :3].T + lidar2ego[:3, 3]
    low, high = np.asarray(box, dtype=np.float64)
    return ((ego >= low) & (ego <= high)).all(1)


def create_nuscenes_point_infos(det_info_file, nuscenes_root, out_dir, name: str = None, log=print) -> Path:
    """Write ``<out_dir>/<name>.pkl`` (default: the detection info's name with ``points`` for ``infos``) and one
    label file per key frame under ``<out_dir>/semantic_mask/`` (int64, one per LiDAR point, indices into
    :data:`BOX_POINT_CLASSES`; ``IGNORE_INDEX`` on the ego vehicle: :func:`ego_vehicle_mask`). Each entry:
    ``lidar_points.lidar_path`` (absolute, the file under ``<nuscenes_root>/samples/LIDAR_TOP``, read in place),
    ``num_pts_feats`` 5, ``pts_semantic_mask_path``,
    ``images`` (six posed frames: absolute ``img_path``, ``cam2world = inv(lidar2cam)``, ``cam2img``), ``token``
    and ``scene_name``. Frames already labelled are rewritten (labels take well under a second per frame)."""
    det_info_file, root, out = Path(det_info_file), Path(nuscenes_root).resolve(), Path(out_dir)
    info = load_pickle(det_info_file, "nuScenes info file")
    categories = list(info["metainfo"]["categories"])
    (out / "semantic_mask").mkdir(parents=True, exist_ok=True)
    entries = []
    for sample in info["data_list"]:
        lidar = root / "samples" / "LIDAR_TOP" / Path(sample["lidar_points"]["lidar_path"]).name
        points = read_bin(lidar, np.float32, 5, what="LiDAR file")
        labels = box_point_labels(points, sample.get("instances", []), categories)
        labels[ego_vehicle_mask(points, sample["lidar_points"]["lidar2ego"])] = IGNORE_INDEX
        mask = out / "semantic_mask" / f"{lidar.stem}.bin"
        save_array(labels, mask, np.int64)
        images = []
        for cam in CAMERAS:
            if cam not in sample["images"]:
                raise DataError(f"{det_info_file}: sample {sample['token']} has no images[{cam!r}]; the point infos "
                                f"need all six cameras ({', '.join(CAMERAS)})")
            view = sample["images"][cam]
            images.append(dict(img_path=str(root / "samples" / cam / Path(view["img_path"]).name),
                               cam2world=np.linalg.inv(np.asarray(view["lidar2cam"], dtype=np.float64)),
                               cam2img=np.asarray(view["cam2img"], dtype=np.float64), camera=cam))
        entries.append(dict(token=sample["token"], scene_name=sample.get("scene_name"), timestamp=sample["timestamp"],
                            lidar_points=dict(lidar_path=str(lidar), num_pts_feats=5),
                            pts_semantic_mask_path=str(mask.resolve()), images=images))
    metainfo = dict(classes=BOX_POINT_CLASSES, seg_raw_ids=list(range(len(BOX_POINT_CLASSES))), dataset="nuscenes",
                    info_version="1.1", scenes=info["metainfo"].get("scenes"),
                    ignored_ego_vehicle_box=EGO_VEHICLE_BOX)
    target = out / f"{name or det_info_file.stem.replace('infos', 'points')}.pkl"
    dump_pickle_atomic(dict(metainfo=metainfo, data_list=entries), target)
    log(f"point labels of {len(entries)} key frames from {det_info_file.name}'s boxes -> {target}")
    return target

