"""nuScenes key frames over an mmdet3d v1.x info file (ours from tools/create_infos.py, or mmdet3d's)."""
import logging
import os.path as osp

from mmengine.logging import print_log

from pc_kd.registry import DATASETS
from pc_kd.structures import CameraRig
from pc_kd.structures.class_names import NUSCENES_BOX_POINT_CLASSES, NUSCENES_CLASSES
from pc_kd.utils.checks import DataError, check_transform

from .base import InfoFileDataset

NUSCENES_IMAGE_HW = (900, 1600)


@DATASETS.register_module()
class NuScenesDataset(InfoFileDataset):
    """nuScenes samples: LiDAR sweep ``[N, 5]`` (x y z intensity ring, LiDAR frame), six cameras, boxes.

    Each item carries ``cameras`` (a :class:`CameraRig` with K and motion-compensated ``lidar2cam`` per view),
    ``img_paths`` in rig order, ``lidar2ego`` and ``ego2global`` (4x4 float64), and ``instances`` with
    ``bbox_3d = [x, y, z, l, w, h, yaw]`` (geometric centre, LiDAR frame), ``bbox_label_3d``, ``velocity``,
    optional ``attr_label`` and ``num_lidar_pts``; ``lidar_sweeps`` (earlier sweeps, paths joined; files checked when
    the pipeline loads sweeps, see ``missing_sweeps``).

    Layout under ``data_root`` (or ``nuscenes_root`` for the samples and sweeps)::

        samples/LIDAR_TOP/*.pcd.bin  samples/CAM_*/*.jpg  sweeps/LIDAR_TOP/*.pcd.bin  nuscenes_infos_<split>.pkl
    """

    METAINFO = dict(classes=NUSCENES_CLASSES)
    CREATE_INFOS = ("python tools/create_infos.py nuscenes --root <nuScenes folder with v1.0-trainval/> --out {out} "
                    "--version v1.0-trainval --split {split}")
    DEFAULT_PREFIX = dict(pts="samples/LIDAR_TOP", img="samples", sweeps="sweeps/LIDAR_TOP", pts_semantic_mask="",
                          pts_instance_mask="")

    MISSING_SWEEPS = ("error", "use_present")

    def __init__(self, *args, image_hw=NUSCENES_IMAGE_HW, missing_sweeps: str = "error", nuscenes_root=None,
                 **kwargs):
        """``nuscenes_root``: the dataset as downloaded (``samples/``, ``sweeps/``) when the info files live
        elsewhere (``data_root``); relative to the working directory.

        ``missing_sweeps``: what to do when the pipeline loads earlier LiDAR sweeps (``LoadPointsFromMultiSweeps``)
        and some that the info file lists are absent: ``"error"`` names them and stops; ``"use_present"`` trains
        with the sweeps that are there (logged once). Without a sweep loader in the pipeline, sweep files are not
        looked at."""
        if missing_sweeps not in self.MISSING_SWEEPS:
            raise ValueError(f"NuScenesDataset: missing_sweeps={missing_sweeps!r}; expected one of "
                             f"{self.MISSING_SWEEPS}")
        self.image_hw, self.missing_sweeps = tuple(image_hw), missing_sweeps
        if nuscenes_root is not None:
            prefix = {key: osp.abspath(osp.join(nuscenes_root, value)) for key, value in self.DEFAULT_PREFIX.items()
                      if value}
            kwargs["data_prefix"] = {**prefix, **(kwargs.get("data_prefix") or {})}
        super().__init__(*args, **kwargs)

    def _sweeps_wanted(self) -> int:
        """The most earlier sweeps a transform of the pipeline loads (0: none)."""
        from pc_kd.datasets.transforms.detection import LoadPointsFromMultiSweeps

        return max([t.sweeps_num for t in getattr(self.pipeline, "transforms", [])
                    if isinstance(t, LoadPointsFromMultiSweeps)], default=0)

    def load_data_list(self):
        data_list = super().load_data_list()
        wanted = self._sweeps_wanted()
        missing, listed = [], 0
        for info in data_list:
            present = []
            for sweep in info["lidar_sweeps"][:wanted]:
                listed += 1
                if osp.isfile(sweep["lidar_points"]["lidar_path"]):
                    present.append(sweep)
                else:
                    missing.append(sweep["lidar_points"]["lidar_path"])
            info["lidar_sweeps"] = present
        if missing and self.missing_sweeps == "error":
            raise DataError(
                f"info file {self.ann_file}: the pipeline loads up to {wanted} earlier LiDAR sweeps per sample "
                f"(LoadPointsFromMultiSweeps), and {len(missing)} of the {listed} sweep files listed are absent, "
                f"e.g. {missing[:3]} (folder data_prefix['sweeps'] = {self.data_prefix.get('sweeps')}). Download "
                f"the sweeps/ folder, or set the dataset's missing_sweeps='use_present' to train with the sweeps "
                f"that are there, or use a pipeline without LoadPointsFromMultiSweeps (one sweep per frame)")
        if missing:
            print_log(f"{type(self).__name__} {self.ann_file}: {len(missing)} of the {listed} listed LiDAR sweep "
                      f"files are absent; samples use the sweeps present (missing_sweeps='use_present')", "current",
                      level=logging.WARNING)
        return data_list

    def parse_data_info(self, info: dict) -> dict:
        info = super().parse_data_info(info)
        where = f"info file {self.ann_file}, sample {info.get('token', info.get('sample_idx'))}"
        info["ego2global"] = check_transform(info["ego2global"], f"{where}: ego2global")
        info["lidar2ego"] = check_transform(info["lidar_points"]["lidar2ego"], f"{where}: lidar_points.lidar2ego")
        images = info.get("images", {})
        info["cameras"] = CameraRig.from_mmdet3d_images(images, self.image_hw, where=f"{where}: images")
        paths = []
        for name in info["cameras"].names:
            rel = images[name]["img_path"]
            rel = rel if "/" in rel else f"{name}/{rel}"  # mmdet3d stores bare file names per camera
            paths.append(self._checked("img", rel, f"images[{name!r}].img_path") if self.check_images
                         else self._join("img", rel))
        info["img_paths"] = paths
        sweeps = []
        for sweep in info.get("lidar_sweeps", []):  # files checked in load_data_list, when the pipeline loads them
            sweep = dict(sweep, lidar_points=dict(sweep["lidar_points"]))
            sweep["lidar_points"]["lidar_path"] = self._join("sweeps", sweep["lidar_points"]["lidar_path"])
            sweeps.append(sweep)
        info["lidar_sweeps"] = sweeps
        for k, inst in enumerate(info.get("instances", [])):
            if len(inst["bbox_3d"]) != 7:
                raise ValueError(f"{where}: instances[{k}].bbox_3d must be [x, y, z, l, w, h, yaw] (geometric "
                                 f"centre, LiDAR frame), got {inst['bbox_3d']}")
        info["lidar2global"] = info["ego2global"] @ info["lidar2ego"]
        return info


@DATASETS.register_module()
class NuScenesPointDataset(InfoFileDataset):
    """nuScenes LiDAR key frames as point clouds with per-point labels derived from the 3D boxes
    (``NUSCENES_BOX_POINT_CLASSES``) and the six cameras as posed frames of the
    cloud's frame (``images``: ``img_path``, ``cam2world = inv(lidar2cam)``, ``cam2img``): what image -> 3D fusion
    (``fuse_dataset``) and point students read. Points ``[N, 5]``: x y z (LiDAR frame, metres), intensity 0..255,
    ring. Info files from :func:`~pc_kd.datasets.converters.nuscenes_points.create_nuscenes_point_infos` (absolute
    paths: the samples are read in place)."""

    METAINFO = dict(classes=NUSCENES_BOX_POINT_CLASSES)
    DEFAULT_PREFIX = dict(pts="", pts_semantic_mask="", pts_instance_mask="", img="")

    def parse_data_info(self, info: dict) -> dict:
        return self.parse_images(super().parse_data_info(info))
