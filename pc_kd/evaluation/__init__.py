"""Metrics: supervised segmentation, part segmentation (ShapeNetPart protocol), Hungarian-matched (unsupervised)
segmentation, nuScenes detection, the linear-SVM probe of pretrained point features."""
from .hungarian import HungarianSegMetric, hungarian_miou
from .linear_probe import d2_histogram, svm_probe
from .nuscenes_det import NuScenesDetMetric, lidar_boxes_to_results, nuscenes_detection_scores
from .part_miou import PartMIoUMetric, category_miou, overall_miou, part_miou
from .seg_metric import SegMetric, confusion_matrix, scores_from_confusion

__all__ = ["d2_histogram", "svm_probe", "PartMIoUMetric", "category_miou", "overall_miou", "part_miou", "HungarianSegMetric", "hungarian_miou", "NuScenesDetMetric",
           "lidar_boxes_to_results", "nuscenes_detection_scores", "SegMetric", "confusion_matrix",
           "scores_from_confusion"]
