"""Supervised semantic segmentation metrics: per-class IoU, mIoU, overall and mean accuracy."""
from typing import Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger

from pc_kd.registry import METRICS
from pc_kd.structures.class_names import IGNORE_INDEX


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int = IGNORE_INDEX,
                     num_pred: int = None):
    """``[K, P]`` int64 counts, rows = ground truth (``K = num_classes``), columns = prediction (``P = num_pred``,
    default K); points whose gt is ``ignore_index`` are skipped. Labels or predictions out of range raise."""
    pred, gt = np.asarray(pred).reshape(-1), np.asarray(gt).reshape(-1)
    if pred.shape != gt.shape:
        raise ValueError(f"confusion_matrix: {pred.shape[0]} predictions for {gt.shape[0]} labels")
    num_pred = num_classes if num_pred is None else num_pred
    keep = gt != ignore_index
    gt, pred = gt[keep].astype(np.int64), pred[keep].astype(np.int64)
    if ((gt < 0) | (gt >= num_classes)).any():
        raise ValueError(f"ground-truth labels outside 0..{num_classes - 1} (and not {ignore_index})")
    bad = (pred < 0) | (pred >= num_pred)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} predictions outside 0..{num_pred - 1} (e.g. {pred[bad][:5].tolist()}); "
                         f"a segmentor must predict one of the {num_pred} classes for every labelled point")
    return np.bincount(gt * num_pred + pred, minlength=num_classes * num_pred).reshape(num_classes, num_pred)


def scores_from_confusion(conf: np.ndarray) -> dict:
    """Scores of a ``[K, P]`` confusion matrix (rows = ground truth; columns ``0..K-1`` = predicted classes,
    any further columns = predictions of no class, which count as wrong and as nobody's false positive).

    IoU per class (NaN for classes absent from gt and prediction), mIoU over present classes, oAcc, mAcc."""
    k = conf.shape[0]
    tp = np.diag(conf[:, :k]).astype(np.float64)
    gt_count, pred_count = conf.sum(1), conf[:, :k].sum(0)
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
