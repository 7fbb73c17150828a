"""Unsupervised segmentation scores: clusters matched to classes by the Hungarian algorithm."""
from typing import Sequence

import numpy as np
import torch
from mmengine.evaluator import BaseMetric
from mmengine.logging import MMLogger
from scipy.optimize import linear_sum_assignment

from pc_kd.registry import METRICS

from .seg_metric import confusion_matrix, scores_from_confusion


def hungarian_miou(pred, gt, num_classes: int, ignore_index: int = -1, unmatched: str = "wrong") -> dict:
    """Match predicted cluster ids to classes one-to-one so that the matched points are most, then score.

    Args:
        pred: ``[N]`` int cluster ids ``>= 0`` (any number of clusters, more than C included).
        gt: ``[N]`` int class ids in ``0..num_classes-1``; ``ignore_index`` points are left out.
        num_classes: C.
        unmatched: what the points of clusters left unmatched (when there are more clusters than classes) are:
            ``"wrong"`` (pc_kd's strict default: a miss of their true class, nobody's false positive) or
            ``"ignore"`` (left out of every count, as a remap of those clusters to the ignore label does). Name
            the convention beside the number.

    Returns:
        ``dict(miou, oacc, macc, iou [C], mapping, unmatched, unmatched_points)`` (``unmatched_points``: the
        scored points in unmatched clusters, whichever the convention) with ``mapping [K]`` the class of each
        cluster id (-1 for unmatched ones), computed by ``scipy.optimize.linear_sum_assignment`` on the ``[K, C]``
        confusion matrix; IoU is NaN for classes absent from gt and from the matched prediction, mIoU and mAcc
        average the present classes.
    """
    if unmatched not in ("wrong", "ignore"):
        raise ValueError(f"hungarian_miou: unmatched must be 'wrong' or 'ignore', got {unmatched!r}")
    pred = np.asarray(pred.cpu() if torch.is_tensor(pred) else pred).astype(np.int64).reshape(-1)
    gt = np.asarray(gt.cpu() if torch.is_tensor(gt) else gt).astype(np.int64).reshape(-1)
    if pred.shape != gt.shape:
        raise ValueError(f"hungarian_miou: {pred.shape[0]} predictions for {gt.shape[0]} labels")
    if (pred[gt != ignore_index] < 0).any():
        raise ValueError("hungarian_miou: cluster ids must be >= 0")
    k = int(max(pred.max() + 1 if len(pred) else 0, num_classes))
    conf = confusion_matrix(pred, gt, num_classes, ignore_index, num_pred=k)  # [C, K]: class x cluster
    rows, cols = linear_sum_assignment(conf.T, maximize=True)
    mapping = np.full(k, -1, np.int64)
    mapping[rows] = cols
    # columns 0..C-1: the matched clusters as their classes; column C: every unmatched cluster (wrong, or dropped)
    matched = np.zeros((num_classes, num_classes + 1), np.int64)
    np.add.at(matched.T, np.where(mapping >= 0, mapping, num_classes), conf.T)
    unmatched_points = int(matched[:, num_classes].sum())
    if unmatched == "ignore":
        matched[:, num_classes] = 0
    return dict(**scores_from_confusion(matched), mapping=mapping, unmatched=unmatched,
                unmatched_points=unmatched_points)


@METRICS.register_module()
class HungarianSegMetric(BaseMetric):
    """Hungarian-matched mIoU / oAcc / mAcc over all evaluated points or pixels (one matching for the whole set).

    Reads ``pred_pts_seg.pts_semantic_mask`` (cluster ids) and ``gt_pts_seg.pts_semantic_mask`` of point clouds,
    or ``pred_sem_seg.data`` and ``gt_sem_seg.data`` (``[H, W]``) of images; the class names come from the dataset
    (ScanNet-20, S3DIS-13, synthetic), ignore index 255.

    Args:
        unmatched: the convention for the points of clusters left unmatched (more clusters than classes):
            ``"wrong"`` (pc_kd's strict default) or ``"ignore"`` (see :func:`hungarian_miou`). The key ``miou``
            follows it; ``miou_unmatched_ignored`` is added beside a strict score.
    """

    default_prefix = "unsup"

    def __init__(self, ignore_index: int = 255, unmatched: str = "wrong", collect_device="cpu", prefix=None):
        super().__init__(collect_device=collect_device, prefix=prefix)
        if unmatched not in ("wrong", "ignore"):
            raise ValueError(f"HungarianSegMetric: unmatched must be 'wrong' or 'ignore', got {unmatched!r}")
        self.ignore_index, self.unmatched = ignore_index, unmatched

    def process(self, data_batch, data_samples: Sequence) -> None:
        for sample in data_samples:
            if "pred_sem_seg" in sample:
                pred, gt = sample["pred_sem_seg"]["data"], sample["gt_sem_seg"]["data"]
            else:
                pred, gt = sample["pred_pts_seg"]["pts_semantic_mask"], sample["gt_pts_seg"]["pts_semantic_mask"]
            pred = torch.as_tensor(pred).cpu().reshape(-1)
            gt = torch.as_tensor(gt).cpu().reshape(-1)
            keep = gt != self.ignore_index  # left out of every count anyway; kept small for the collection
            self.results.append((pred[keep].numpy().astype(np.int32), gt[keep].numpy().astype(np.int32)))

    def compute_metrics(self, results: list) -> dict:
        classes = self.dataset_meta["classes"]
        pred = np.concatenate([r[0] for r in results])
        gt = np.concatenate([r[1] for r in results])
        scores = hungarian_miou(pred, gt, len(classes), self.ignore_index, self.unmatched)
        out = dict(miou=scores["miou"], oacc=scores["oacc"], macc=scores["macc"])
        if self.unmatched == "wrong":
            out["miou_unmatched_ignored"] = hungarian_miou(pred, gt, len(classes), self.ignore_index, "ignore")["miou"]
        out.update({f"iou_{name}": float(v) for name, v in zip(classes, scores["iou"])})
        table = "\n".join(f"  {name:<16s} {v * 100:6.2f}" for name, v in zip(classes, scores["iou"]))
        MMLogger.get_current_instance().info(
            f"Hungarian-matched IoU (%), one matching over {len(gt)} points / pixels, unmatched clusters "
            f"{'count wrong' if self.unmatched == 'wrong' else 'ignored'} ({scores['unmatched_points']} in them):\n"
            f"{table}\n  {'mIoU':<16s} {scores['miou'] * 100:6.2f}")
        return out
