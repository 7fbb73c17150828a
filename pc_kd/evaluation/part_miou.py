"""Part segmentation scores (ShapeNetPart protocol): per-shape part mIoU, means over shapes and categories."""
from typing import Dict, Sequence

import numpy as np
import torch


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
