"""nuScenes key frames over an mmdet3d v1.x info file (ours from tools/create_infos.py, or mmdet3d's)."""
from pc_kd.registry import DATASETS
from pc_kd.structures import CameraRig
from pc_kd.structures.class_names import NUSCENES_CLASSES
from pc_kd.utils.checks import check_transform

from .base import InfoFileDataset

NUSCENES_IMAGE_HW = (900, 1600)


@DATASETS.register_module()
class NuScenesDataset(InfoFileDataset):
    """nuScenes samples: LiDAR sweep ``[N, 5]`` (x y z intensity ring, LiDAR frame), six cameras, boxes.

    Each item carries ``cameras`` (a :class:`CameraRig` with K and motion-compensated ``lidar2cam`` per view),
    ``img_paths`` in rig order, ``lidar2ego`` and ``ego2global`` (4x4 float64), and ``instances`` with
    ``bbox_3d = [x, y, z, l, w, h, yaw]`` (geometric centre, LiDAR frame), ``bbox_label_3d``, ``velocity``,
    optional ``attr_label`` and ``num_lidar_pts``; ``lidar_sweeps`` (earlier sweeps, paths joined, files checked).

    Layout under ``data_root``::

        samples/LIDAR_TOP/*.pcd.bin  samples/CAM_*/*.jpg  sweeps/LIDAR_TOP/*.pcd.bin  nuscenes_infos_<split>.pkl
    """

    METAINFO = dict(classes=NUSCENES_CLASSES)
    CREATE_INFOS = ("python tools/create_infos.py nuscenes --root <nuScenes folder with v1.0-trainval/> --out {out} "
                    "--version v1.0-trainval --split {split}")
    DEFAULT_PREFIX = dict(pts="samples/LIDAR_TOP", img="samples", sweeps="sweeps/LIDAR_TOP", pts_semantic_mask="",
                          pts_instance_mask="")

    def __init__(self, *args, image_hw=NUSCENES_IMAGE_HW, **kwargs):
        self.image_hw = tuple(image_hw)
        super().__init__(*args, **kwargs)

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
        for k, sweep in enumerate(info.get("lidar_sweeps", [])):
            sweep = dict(sweep, lidar_points=dict(sweep["lidar_points"]))
            sweep["lidar_points"]["lidar_path"] = self._checked(
                "sweeps", sweep["lidar_points"]["lidar_path"], f"lidar_sweeps[{k}].lidar_points.lidar_path")
            sweeps.append(sweep)
        info["lidar_sweeps"] = sweeps
        for k, inst in enumerate(info.get("instances", [])):
            if len(inst["bbox_3d"]) != 7:
                raise ValueError(f"{where}: instances[{k}].bbox_3d must be [x, y, z, l, w, h, yaw] (geometric "
                                 f"centre, LiDAR frame), got {inst['bbox_3d']}")
        info["lidar2global"] = info["ego2global"] @ info["lidar2ego"]
        return info
