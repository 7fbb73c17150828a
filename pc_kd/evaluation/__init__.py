"""Metrics: supervised segmentation, part segmentation (ShapeNetPart protocol), Hungarian-matched (unsupervised)
segmentation, nuScenes detection."""
from .hungarian import HungarianSegMetric, hungarian_miou
from .nuscenes_det import NuScenesDetMetric, lidar_boxes_to_results, nuscenes_detection_scores
from .part_miou import PartMIoUMetric, category_miou, overall_miou, part_miou
from .seg_metric import SegMetric, confusion_matrix, scores_from_confusion

__all__ = ["PartMIoUMetric", "category_miou", "overall_miou", "part_miou", "HungarianSegMetric", "hungarian_miou", "NuScenesDetMetric",
           "lidar_boxes_to_results", "nuscenes_detection_scores", "SegMetric", "confusion_matrix",
           "scores_from_confusion"]
