"""Common base of pc_kd datasets: mmdet3d v1.x-style info files, paths joined under ``data_root``."""
import os.path as osp
import re
from typing import List, Optional

import numpy as np
from mmengine.dataset import BaseDataset

from pc_kd.registry import TRANSFORMS
from pc_kd.structures.class_names import IGNORE_INDEX, label_mapping
from pc_kd.utils.io import load_pickle


class InfoFileDataset(BaseDataset):
    """A dataset described by an info ``.pkl``: ``{'metainfo': {...}, 'data_list': [ {...}, ... ]}``.

    Each entry follows the mmdet3d v1.x info format (``lidar_points.lidar_path``, ``pts_semantic_mask_path``,
    ``instances`` ...); relative paths are joined with ``data_root`` + ``data_prefix`` (keys ``pts``,
    ``pts_semantic_mask``, ``pts_instance_mask``, ``img``). Files are checked when the dataset is built so a
    wrong ``data_root`` fails at start-up, not hours into training.

    Args:
        seg_raw_ids: raw semantic ids of the classes, in class order; the stored masks hold raw ids and are
            mapped to ``0..len(classes)-1`` (everything else -> ``IGNORE_INDEX`` = 255).
    """

    METAINFO = dict(classes=())
    # the command that writes this dataset's info files; {out} is the folder of ann_file, {split} the part of its
    # name after "_infos_"
    CREATE_INFOS = ""
    DEFAULT_PREFIX = dict(pts="points", pts_semantic_mask="semantic_mask", pts_instance_mask="instance_mask",
                          img="")

    def __init__(self, ann_file: str = "", data_root: str = "", data_prefix: Optional[dict] = None,
                 seg_raw_ids=None, pipeline=(), test_mode: bool = False, metainfo: Optional[dict] = None,
                 check_images: bool = True, **kwargs):
        self.check_images = check_images  # False: missing frames are left to the caller (fusion) to report
        prefix = dict(self.DEFAULT_PREFIX)
        prefix.update(data_prefix or {})
        super().__init__(ann_file=ann_file, data_root=data_root, data_prefix=prefix, pipeline=[TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline],
                         test_mode=test_mode, metainfo=metainfo, **kwargs)
        classes = self.metainfo.get("classes", ())
        if seg_raw_ids is None:
            seg_raw_ids = self.metainfo.get("seg_raw_ids", range(len(classes)))
        if len(seg_raw_ids) != len(classes):
            raise ValueError(f"{type(self).__name__}: {len(seg_raw_ids)} seg_raw_ids for {len(classes)} classes")
        self.seg_label_mapping = label_mapping(seg_raw_ids)
        self._metainfo.update(seg_label_mapping=self.seg_label_mapping, ignore_index=IGNORE_INDEX)

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        info["seg_label_mapping"] = self.seg_label_mapping
        return info

    def create_infos_command(self) -> str:
        """The shell command that writes ``ann_file`` ("" when the dataset has none)."""
        match = re.search(r"_infos_(.+)\.pkl$", osp.basename(self.ann_file))
        split = match.group(1) if match else "train"
        return self.CREATE_INFOS.format(out=osp.dirname(self.ann_file) or ".", split=split,
                                        area=split.rsplit("_", 1)[-1])

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            command = self.create_infos_command()
            how = (f"create it with\n    {command}\n(--root: the dataset as downloaded, see the README's 'What "
                   f"you can do today')") if command else "check ann_file / data_root in the config"
            raise FileNotFoundError(f"{type(self).__name__}: info file {self.ann_file} not found (ann_file joined "
                                    f"with data_root in the config); {how}")
        info = load_pickle(self.ann_file, "info file")
        if not isinstance(info, dict) or "data_list" not in info:
            raise ValueError(f"info file {self.ann_file}: expected a dict with 'metainfo' and 'data_list' (the "
                             f"mmdet3d v1.x format); got {type(info).__name__} with keys "
                             f"{list(info)[:5] if isinstance(info, dict) else '-'}. Old v0.x infos: re-create "
                             f"them with tools/create_infos.py")
        version = str(info.get("metainfo", {}).get("info_version", "1.1"))
        if version != "1.1":
            raise ValueError(f"info file {self.ann_file}: metainfo.info_version is {version!r}; pc_kd reads version "
                             f"'1.1' (mmdet3d >= 1.1: boxes [x, y, z, l, w, h, yaw] with the geometric centre, yaw "
                             f"from +x, in the LiDAR frame). Boxes of other versions are in another frame / yaw "
                             f"convention: re-create the file with tools/create_infos.py")
        for key, value in info.get("metainfo", {}).items():
            self._metainfo.setdefault(key, value)
        out = []
        for i, raw in enumerate(info["data_list"]):
            entry = self.parse_data_info(raw)
            entry.setdefault("sample_idx", i)
            out.append(entry)
        return out

    def _join(self, key: str, path: str) -> str:
        return path if osp.isabs(path) else osp.join(self.data_prefix.get(key, ""), path)

    def _checked(self, key: str, path: str, field: str) -> str:
        full = self._join(key, path)
        if not osp.isfile(full):
            raise FileNotFoundError(f"info file {self.ann_file}: {field} -> {full} does not exist; check "
                                    f"data_root / data_prefix['{key}'] in the config")
        return full

    def parse_images(self, info: dict) -> dict:
        """Join the paths of the posed frames in ``info['images']`` (a list of dicts with ``img_path``,
        ``cam2world``, ``cam2img`` and optional ``depth_path`` / ``label_path``); check the images exist
        unless ``check_images=False``."""
        images = []
        for i, img in enumerate(info.get("images", [])):
            img = dict(img)
            img["img_path"] = (self._checked("img", img["img_path"], f"images[{i}].img_path") if self.check_images
                               else self._join("img", img["img_path"]))
            for key in ("depth_path", "label_path"):
                if img.get(key):
                    img[key] = self._join("img", img[key])
            images.append(img)
        info["images"] = images
        return info

    def parse_data_info(self, info: dict) -> dict:
        info = dict(info)
        if "lidar_points" not in info or "lidar_path" not in info["lidar_points"]:
            raise KeyError(f"info file {self.ann_file}: an entry has no lidar_points.lidar_path "
                           f"(keys: {sorted(info)})")
        lidar = dict(info["lidar_points"])
        lidar["lidar_path"] = self._checked("pts", lidar["lidar_path"], "lidar_points.lidar_path")
        info["lidar_points"] = lidar
        info["lidar_path"] = lidar["lidar_path"]
        info["num_pts_feats"] = int(lidar.get("num_pts_feats", 6))
        for key in ("pts_semantic_mask", "pts_instance_mask"):
            if info.get(key + "_path"):
                info[key + "_path"] = self._checked(key, info[key + "_path"], key + "_path")
        if "axis_align_matrix" in info:
            info["axis_align_matrix"] = np.asarray(info["axis_align_matrix"], dtype=np.float64)
        return info
