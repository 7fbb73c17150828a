"""Part segmentation scores (ShapeNetPart protocol): per-shape part mIoU, means over shapes and categories."""
from typing import Dict, Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric

from pc_kd.registry import METRICS


def part_miou(pred, gt, part_ids: Sequence[int]) -> float:
    """One shape's part mIoU in [0, 1]: the mean over ``part_ids`` (the category's parts) of IoU between
    ``pred [N]`` and ``gt [N]``; a part absent from both counts IoU = 1 (PointCLIPv2's rule, which PartDistill
    and the ShapeNetPart literature use)."""
    pred = np.asarray(pred.cpu() if torch.is_tensor(pred) else pred).reshape(-1)
    gt = np.asarray(gt.cpu() if torch.is_tensor(gt) else gt).reshape(-1)
    if pred.shape != gt.shape:
        raise ValueError(f"part_miou: {pred.shape[0]} predictions for {gt.shape[0]} labels")
    if len(part_ids) == 0:
        raise ValueError("part_miou: part_ids is empty (the category's part ids)")
    ious = []
    for p in part_ids:
        union = np.sum((pred == p) | (gt == p))
        ious.append(1.0 if union == 0 else np.sum((pred == p) & (gt == p)) / union)
    return float(np.mean(ious))


def category_miou(preds: Sequence, gts: Sequence, part_ids: Sequence[int]) -> float:
    """The mean of :func:`part_miou` over a category's shapes (``preds``, ``gts``: one ``[N]`` array each)."""
    if len(preds) != len(gts) or not len(preds):
        raise ValueError(f"category_miou: {len(preds)} predictions for {len(gts)} shapes (need >= 1)")
    return float(np.mean([part_miou(p, g, part_ids) for p, g in zip(preds, gts)]))


def overall_miou(per_category: Dict[str, float]) -> float:
    """"Overall": the mean of the categories' mIoU (each category weighs the same, whatever its shape count)."""
    if not per_category:
        raise ValueError("overall_miou: no category")
    return float(np.mean(list(per_category.values())))


@METRICS.register_module()
class PartMIoUMetric(BaseMetric):
    """The ShapeNetPart protocol over the evaluated shapes of one category: :func:`part_miou` per shape (parts
    ``0..num_parts-1``, IoU 1 for a part absent from both), then the mean (:func:`category_miou`). Reads
    ``pred_pts_seg.pts_semantic_mask`` and ``gt_pts_seg.pts_semantic_mask``; ``num_parts`` from the dataset's
    ``metainfo`` unless given. Reports ``part_miou`` in percent (the tables' unit)."""

    default_prefix = "part"

    def __init__(self, num_parts: int = None, collect_device="cpu", prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.num_parts = num_parts

    def process(self, data_batch, data_samples: Sequence) -> None:
        num_parts = self.num_parts or (self.dataset_meta or {}).get("num_parts")
        if not num_parts:
            raise ValueError("PartMIoUMetric: num_parts is neither given nor in the dataset's metainfo")
        for sample in data_samples:
            self.results.append(part_miou(sample["pred_pts_seg"]["pts_semantic_mask"],
                                          sample["gt_pts_seg"]["pts_semantic_mask"], range(num_parts)))

    def compute_metrics(self, results: list) -> dict:
        return dict(part_miou=100 * float(np.mean(results)), shapes=len(results))
