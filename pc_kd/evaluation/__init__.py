"""Metrics: supervised segmentation, Hungarian-matched (unsupervised) segmentation."""
from .hungarian import HungarianSegMetric, hungarian_miou
from .seg_metric import SegMetric, confusion_matrix, scores_from_confusion

__all__ = ["HungarianSegMetric", "hungarian_miou", "SegMetric", "confusion_matrix", "scores_from_confusion"]
