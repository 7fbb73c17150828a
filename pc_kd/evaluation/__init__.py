"""Metrics: supervised segmentation, Hungarian-matched (unsupervised) segmentation, nuScenes detection."""
from .hungarian import HungarianSegMetric, hungarian_miou
from .nuscenes_det import NuScenesDetMetric, lidar_boxes_to_results, nuscenes_detection_scores
from .seg_metric import SegMetric, confusion_matrix, scores_from_confusion

__all__ = ["HungarianSegMetric", "hungarian_miou", "NuScenesDetMetric", "lidar_boxes_to_results", "nuscenes_detection_scores", "SegMetric", "confusion_matrix", "scores_from_confusion"]
