"""Supervised semantic segmentation metrics: per-class IoU, mIoU, overall and mean accuracy."""
from typing import Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from pc_kd.datasets.class_names import IGNORE_INDEX
from pc_kd.registry import METRICS


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX):
    """``[K, K]`` int64 counts, rows = ground truth, columns = prediction; ``ignore_index`` gt is skipped."""
    keep = gt != ignore_index
    if ((gt[keep] < 0) | (gt[keep] >= num_classes)).any():
        raise ValueError(f"ground-truth labels outside 0..{num_classes - 1} (and not {ignore_index})")
    idx = gt[keep].astype(np.int64) * num_classes + np.clip(pred[keep], 0, num_classes - 1).astype(np.int64)
    return np.bincount(idx, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def scores_from_confusion(conf: np.ndarray) -> dict:
    """IoU per class (NaN for classes absent from gt and prediction), mIoU over present classes, oAcc, mAcc."""
    tp = np.diag(conf).astype(np.float64)
    gt_count, pred_count = conf.sum(1), conf.sum(0)
    union = gt_count + pred_count - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(gt_count > 0, tp / gt_count, np.nan)
    return dict(iou=iou, miou=float(np.nanmean(iou)) if np.isfinite(iou).any() else 0.0,
                oacc=float(tp.sum() / max(conf.sum(), 1)),
                macc=float(np.nanmean(acc)) if np.isfinite(acc).any() else 0.0)


@METRICS.register_module()
class SegMetric(BaseMetric):
    """mIoU / oAcc / mAcc over all points of the evaluated samples (one confusion matrix for the whole set).

    Reads ``pred_pts_seg.pts_semantic_mask`` and ``gt_pts_seg.pts_semantic_mask`` of each data sample.
    Reports ``miou``, ``oacc``, ``macc`` and ``iou_<class>`` (percent-free fractions in [0, 1]).
    """

    default_prefix = "seg"

    def __init__(self, ignore_index: int = IGNORE_INDEX, collect_device="cpu", prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ignore_index = ignore_index

    def process(self, data_batch, data_samples: Sequence) -> None:
        num_classes = len(self.dataset_meta["classes"])
        for sample in data_samples:
            pred = sample["pred_pts_seg"]["pts_semantic_mask"]
            gt = sample["gt_pts_seg"]["pts_semantic_mask"]
            pred, gt = (torch.as_tensor(x).cpu().numpy() for x in (pred, gt))
            if pred.shape != gt.shape:
                raise ValueError(f"SegMetric: {pred.shape} predictions for {gt.shape} labels")
            self.results.append(confusion_matrix(pred, gt, num_classes, self.ignore_index))

    def compute_metrics(self, results: list) -> dict:
        classes = self.dataset_meta["classes"]
        scores = scores_from_confusion(np.sum(results, axis=0))
        out = dict(miou=scores["miou"], oacc=scores["oacc"], macc=scores["macc"])
        out.update({f"iou_{name}": float(v) for name, v in zip(classes, scores["iou"])})
        logger = MMLogger.get_current_instance()
        table = "\n".join(f"  {name:<16s} {v * 100:6.2f}" for name, v in zip(classes, scores["iou"]))
        logger.info(f"per-class IoU (%):\n{table}\n  {'mIoU':<16s} {scores['miou'] * 100:6.2f}")
        return out
