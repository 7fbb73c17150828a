"""Camera images with per-pixel training targets (e.g. Drive&Segment's pseudo-labels) and, for evaluation, the
true classes: what a 2D student trains on inside the Runner."""
import json
import os.path as osp
from typing import List

from mmengine.dataset import BaseDataset

from pc_kd.registry import DATASETS, TRANSFORMS
from pc_kd.structures.class_names import IGNORE_INDEX

FORMAT = "pc_kd.image_segmentation.v1"


@DATASETS.register_module()
class ImageSegmentationDataset(BaseDataset):
    """Images with label images, listed by a JSON ann file::

        {"metainfo": {"format": "pc_kd.image_segmentation.v1", "classes": [...true class names...],
                      "num_targets": K, "target": "what the targets are"},
         "data_list": [{"img_path": "images/0000_0.png", "target_path": "targets/0000_0.png",
                        "gt_path": "gt/0000_0.png"}, ...]}

    ``img_path``: an RGB image; ``target_path``: uint8 ids ``0..num_targets-1`` the model learns from (pseudo-classes
    of a teacher, or true classes for an upper bound; ``IGNORE_INDEX`` = 255 unlabelled); ``gt_path``: uint8 ids
    into ``classes`` (255 ignored), read for evaluation only. Paths are relative to ``data_root``. The ann file and
    every file it names are checked when the dataset is built, so a wrong ``data_root`` fails at start-up.
    ``pc_kd.experiments.drive_segment.write_pseudo_label_dataset`` writes this layout.
    """

    METAINFO = dict(classes=())

    def __init__(self, ann_file: str = "", data_root: str = "", pipeline=(), test_mode: bool = False, **kwargs):
        super().__init__(ann_file=ann_file, data_root=data_root, test_mode=test_mode,
                         pipeline=[TRANSFORMS.build(t) if isinstance(t, dict) else t for t in pipeline], **kwargs)

    def load_data_list(self) -> List[dict]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f"{type(self).__name__}: ann file {self.ann_file} not found (ann_file joined with data_root in the "
                f"config). Drive&Segment's pseudo-label images are written by `make demo-drive-segment` (or "
                f"`pc-kd demo-drive-segment`) into work_dirs/demo_drive_segment/pseudo_label_dataset/")
        with open(self.ann_file) as f:
            try:
                ann = json.load(f)
            except json.JSONDecodeError as err:
                raise ValueError(f"ann file {self.ann_file}: not valid JSON ({err})") from None
        meta = ann.get("metainfo", {}) if isinstance(ann, dict) else {}
        if meta.get("format") != FORMAT or "data_list" not in ann:
            raise ValueError(f"ann file {self.ann_file}: expected a dict with 'metainfo' (format {FORMAT!r}, classes, "
                             f"num_targets) and 'data_list'; got format {meta.get('format')!r}")
        if not isinstance(meta.get("num_targets"), int) or meta["num_targets"] < 1:
            raise ValueError(f"ann file {self.ann_file}: metainfo.num_targets must be a positive int (the number of "
                             f"target ids); got {meta.get('num_targets')!r}")
        self._metainfo.update(meta)
        out = []
        for i, raw in enumerate(ann["data_list"]):
            if "img_path" not in raw or not ("target_path" in raw or "gt_path" in raw):
                raise KeyError(f"ann file {self.ann_file}: data_list[{i}] needs img_path and target_path and / or "
                               f"gt_path; it has {sorted(raw)}")
            info = {k: osp.join(self.data_root, v) if k.endswith("_path") else v for k, v in raw.items()}
            for key, path in info.items():
                if key.endswith("_path") and not osp.isfile(path):
                    raise FileNotFoundError(f"ann file {self.ann_file}: data_list[{i}].{key} = {path} does not exist")
            info["sample_idx"] = i
            info["ignore_index"] = IGNORE_INDEX
            out.append(info)
        return out
