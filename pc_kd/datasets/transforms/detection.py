"""Transforms of the BEV detection pipelines: earlier LiDAR sweeps, multi-view images, LiDAR depth maps per
camera, BEV augmentation and packing for :class:`pc_kd.models.detectors.BEVDetector`."""
import logging

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.structures import InstanceData
from PIL import Image

from pc_kd.registry import TRANSFORMS
from pc_kd.structures import Point3DDataSample
from pc_kd.utils.checks import check_finite_points, check_transform
from pc_kd.utils.io import read_bin

from .augment import RandomRotScaleFlip


@TRANSFORMS.register_module()
class LoadPointsFromMultiSweeps:
    """Append up to ``sweeps_num`` earlier LiDAR sweeps (``results['lidar_sweeps']``) to ``points`` with a
    time-lag column, so that motion (velocity) is observable.

    Each sweep's points are mapped into the key frame's LiDAR frame by ``inv(lidar2sensor)`` (``lidar2sensor`` =
    key LiDAR -> sweep LiDAR, 4x4) and get time lag ``timestamp(key) - timestamp(sweep)`` seconds; the key
    frame's points get 0. Output ``points [N, len(use_dim) + 1]`` (the key frame's columns must be ``use_dim``
    of the sweep files, as ``LoadPointsFromFile`` left them). Points within ``min_range`` metres (the ego
    vehicle) of the sweep's sensor are dropped. The first sample with fewer sweeps than ``sweeps_num`` is logged
    (a scene's first frames, or info files made without sweeps), with how many it has.
    """

    def __init__(self, sweeps_num: int = 1, load_dim: int = 5, use_dim=(0, 1, 2, 3), min_range: float = 1.0):
        self.sweeps_num, self.load_dim, self.use_dim, self.min_range = sweeps_num, load_dim, list(use_dim), min_range
        self._told = False

    def __call__(self, results: dict) -> dict:
        key = results["points"]
        if key.shape[1] != len(self.use_dim):
            raise ValueError(f"LoadPointsFromMultiSweeps: sample {results.get('token')}: points have "
                             f"{key.shape[1]} columns but use_dim={self.use_dim}; give LoadPointsFromFile the same "
                             f"use_dim")
        clouds = [np.concatenate([key, np.zeros((len(key), 1), key.dtype)], 1)]
        sweeps = results.get("lidar_sweeps") or []
        if len(sweeps) < self.sweeps_num and not self._told:
            self._told = True
            print_log(f"LoadPointsFromMultiSweeps: sample {results.get('token', results.get('sample_idx'))} has "
                      f"{len(sweeps)} earlier LiDAR sweeps of the {self.sweeps_num} requested, and is used with "
                      f"those (a scene's first frames have fewer; none at all: the info file was made without "
                      f"sweeps, e.g. from a download without the sweeps/ folder). Further such samples are not "
                      f"logged", "current", level=logging.WARNING)
        for k, sweep in enumerate(sweeps[:self.sweeps_num]):
            path = sweep["lidar_points"]["lidar_path"]
            pts = read_bin(path, np.float32, self.load_dim, what="sweep points file")
            check_finite_points(pts, f"sweep points file {path}")
            pts = pts[np.linalg.norm(pts[:, :2], axis=1) >= self.min_range][:, self.use_dim]
            sensor2key = np.linalg.inv(check_transform(sweep["lidar_points"]["lidar2sensor"],
                                                       f"lidar_sweeps[{k}].lidar_points.lidar2sensor"))
            pts[:, :3] = pts[:, :3].astype(np.float64) @ sensor2key[:3, :3].T + sensor2key[:3, 3]
            lag = np.full((len(pts), 1), results["timestamp"] - sweep["timestamp"], dtype=key.dtype)
            clouds.append(np.concatenate([pts, lag], 1))
        results["points"] = np.concatenate(clouds).astype(np.float32)
        results["num_points"] = len(results["points"])
        return results


def image_aug_matrix(scale: float, crop_xy) -> np.ndarray:
    """4x4 pixel transform of resizing by ``scale`` then cropping at ``crop_xy = (x0, y0)`` (resized pixels):
    ``[u', v'] = scale * [u, v] - crop_xy``, applied on the left of ``lidar2img``."""
    mat = np.eye(4)
    mat[0, 0] = mat[1, 1] = scale
    mat[0, 2], mat[1, 2] = -crop_xy[0], -crop_xy[1]
    return mat


@TRANSFORMS.register_module()
class LoadMultiViewImages:
    """Load the camera images of a sample (``img_paths`` and ``cameras`` from NuScenesDataset) in rig order.

    Each image is resized by ``final_hw[1] / W`` (the width fits) and cropped to ``final_hw``: the bottom rows
    are kept (the sky goes), centred horizontally; ``lidar2img`` follows both steps (pixel centres at +0.5).

    Adds ``imgs [V, 3, H, W]`` float32 in 0..1, ``lidar2img [V, 4, 4]`` float64 (of the final images),
    ``cam_names`` (rig order) and ``img_hw`` = ``final_hw``.

    Args:
        final_hw: the network's input size (H, W); ``None`` keeps the stored size.
        cam_names: if given, the cameras the model expects, in its order; a sample whose rig differs raises.
    """

    def __init__(self, final_hw=None, cam_names=None):
        self.final_hw = None if final_hw is None else tuple(int(v) for v in final_hw)
        self.cam_names = None if cam_names is None else list(cam_names)

    def __call__(self, results: dict) -> dict:
        rig = results["cameras"]
        where = f"sample {results.get('token', results.get('sample_idx'))}"
        if self.cam_names is not None and list(rig.names) != self.cam_names:
            raise ValueError(f"LoadMultiViewImages: {where} has cameras {list(rig.names)}, the model expects "
                             f"{self.cam_names} (names and order); set cam_names in the config to the data's rig")
        h0, w0 = rig.image_hw
        hw = self.final_hw or (h0, w0)
        scale = hw[1] / w0
        rh = int(round(h0 * scale))
        if rh < hw[0]:
            raise ValueError(f"LoadMultiViewImages: images {h0}x{w0} resized to width {hw[1]} are {rh} rows, fewer "
                             f"than final_hw {hw}")
        crop = (0, rh - hw[0])
        imgs = []
        for path in results["img_paths"]:
            img = Image.open(path).convert("RGB")
            if img.size != (w0, h0):
                raise ValueError(f"LoadMultiViewImages: {path} is {img.size[1]}x{img.size[0]}, the info file says "
                                 f"{h0}x{w0}")
            if (rh, hw[1]) != (h0, w0):
                img = img.resize((hw[1], rh), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.float32)[crop[1]:crop[1] + hw[0]] / 255.0
            imgs.append(arr.transpose(2, 0, 1))
        results["imgs"] = np.ascontiguousarray(np.stack(imgs))
        results["lidar2img"] = image_aug_matrix(scale, crop) @ rig.lidar2img
        results["cam_names"] = list(rig.names)
        results["img_hw"] = hw
        return results


@TRANSFORMS.register_module()
class PointsToDepthMaps:
    """LiDAR depth per camera: ``depth_maps [V, H, W]`` float32 metres, the nearest point's camera z in each
    pixel, 0 = no point. Uses ``lidar2img`` / ``img_hw`` of LoadMultiViewImages and the points' xyz; if the
    points were moved by a BEV augmentation first (``bev_aug_matrix``), they are mapped back."""

    def __call__(self, results: dict) -> dict:
        from pc_kd.projection import project_points

        xyz = results["points"][:, :3].astype(np.float64)
        if "bev_aug_matrix" in results:
            inv = np.linalg.inv(results["bev_aug_matrix"])
            xyz = xyz @ inv[:3, :3].T + inv[:3, 3]
        h, w = results["img_hw"]
        proj = project_points(torch.from_numpy(xyz), torch.as_tensor(results["lidar2img"]), (h, w))
        depth = np.zeros((len(proj.depth), h, w), np.float32)
        for v in range(len(depth)):
            ok = proj.valid[v].numpy()
            uv = np.floor(proj.uv[v][ok].numpy()).astype(np.int64)
            z = proj.depth[v][ok].numpy().astype(np.float32)
            order = np.argsort(-z)  # far first, so the nearest point is written last and wins
            depth[v, uv[order, 1], uv[order, 0]] = z[order]
        results["depth_maps"] = depth
        return results


@TRANSFORMS.register_module()
class BEVAugment(RandomRotScaleFlip):
    """BEV data augmentation (BEVDet's "BDA"): rotate about z, scale, and flip x and/or y, applied to the points,
    the boxes (centre, size, yaw) and their velocities (:class:`RandomRotScaleFlip` with driving defaults).

    The 4x4 used (original LiDAR frame -> augmented frame) is composed into ``results['bev_aug_matrix']``; the
    camera path applies it to its frustum points (the images and ``lidar2img`` stay those of the sensors).
    """

    MATRIX_KEY = "bev_aug_matrix"

    def __init__(self, rot_range=(-np.pi / 8, np.pi / 8), scale_range=(0.95, 1.05), flip_x_prob=0.5,
                 flip_y_prob=0.5, seed=None):
        super().__init__(rot_range, scale_range, flip_y_prob, seed, flip_x_prob)


DET_META_KEYS = ("token", "sample_idx", "lidar_path", "timestamp", "lidar2ego", "ego2global", "lidar2img",
                 "cam_names", "img_hw", "bev_aug_matrix", "num_points")


@TRANSFORMS.register_module()
class PackDetInputs:
    """Pack a detection sample: ``inputs = {'points': [N, C] float32, 'imgs': [V, 3, H, W] float32 (if
    loaded)}``; a :class:`Point3DDataSample` with metainfo ``meta_keys`` (what :class:`NuScenesDetMetric` and the
    camera path read: ``token``, ``lidar2ego``, ``ego2global``, ``lidar2img``, ``bev_aug_matrix`` ...),
    ``depth_maps [V, H, W]`` (if made) and ``gt_instances_3d`` (``bboxes_3d`` Boxes3D in the LiDAR frame,
    ``labels_3d``, ``num_lidar_pts``, ``num_radar_pts``, ``attr_labels`` when the info has them).

    Checks every box: a size <= 0 or NaN / inf in ``x y z l w h yaw`` names the sample and the field (a NaN
    velocity is allowed: no neighbour in time).
    """

    def __init__(self, meta_keys=DET_META_KEYS):
        self.meta_keys = tuple(meta_keys)

    def __call__(self, results: dict) -> dict:
        inputs = {"points": torch.from_numpy(np.ascontiguousarray(results["points"], dtype=np.float32))}
        if "imgs" in results:
            inputs["imgs"] = torch.from_numpy(np.ascontiguousarray(results["imgs"], dtype=np.float32))
        meta = {k: results[k] for k in self.meta_keys if k in results}
        meta.setdefault("bev_aug_matrix", np.eye(4))
        sample = Point3DDataSample(metainfo=meta)
        if "depth_maps" in results:
            sample.depth_maps = torch.from_numpy(results["depth_maps"])
        if "gt_bboxes_3d" in results:
            boxes, labels = results["gt_bboxes_3d"], np.asarray(results["gt_labels_3d"], np.int64)
            check_det_boxes(boxes.tensor, f"sample {results.get('token', results.get('sample_idx'))}: gt_bboxes_3d")
            gt = InstanceData(bboxes_3d=boxes, labels_3d=torch.from_numpy(labels))
            for key in ("num_lidar_pts", "num_radar_pts", "attr_labels"):
                if key in results:
                    gt[key] = torch.as_tensor(np.asarray(results[key], np.int64))
            sample.gt_instances_3d = gt
        return {"inputs": inputs, "data_samples": sample}


def check_det_boxes(tensor: torch.Tensor, where: str) -> None:
    """Raise naming ``where`` and the first bad box if a size is <= 0 or a value of ``x y z l w h yaw`` is not
    finite (a velocity may be NaN: an annotation without a neighbour in time; inf is refused)."""
    if len(tensor) == 0:
        return
    bad = ~torch.isfinite(tensor[:, :7]).all(1) | torch.isinf(tensor[:, 7:]).any(1)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(f"{where}[{i}] has NaN / inf values {tensor[i].tolist()} (x y z l w h yaw [vx vy])")
    small = (tensor[:, 3:6] <= 0).any(1)
    if small.any():
        i = int(small.nonzero()[0])
        raise ValueError(f"{where}[{i}] has a size (l, w, h) <= 0: {tensor[i, 3:6].tolist()}")
