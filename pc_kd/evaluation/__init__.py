"""Metrics: supervised segmentation (Hungarian-matched mIoU and nuScenes detection join it)."""
from .seg_metric import SegMetric, confusion_matrix, scores_from_confusion

__all__ = ["SegMetric", "confusion_matrix", "scores_from_confusion"]
