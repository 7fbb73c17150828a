"""Datasets (ScanNet v2, S3DIS, nuScenes, synthetic scenes), transforms and info-file converters."""
from pc_kd.structures.class_names import IGNORE_INDEX, NUSCENES_CLASSES, S3DIS_CLASSES, SCANNET20_CLASSES

from . import transforms  # noqa: F401  (registers the transforms)
from .image_segmentation import ImageSegmentationDataset
from .indoor import S3DISDataset, ScanNetDataset
from .nuscenes import NuScenesDataset, NuScenesPointDataset
from .part_shape_set import PartUnitsDataset, ShapeSet, load_shape_set, save_shape_set
from .samplers import EpochSeededSampler, SampleDraw
from .synthetic import SyntheticDrivingDataset, SyntheticIndoorDataset

__all__ = ["IGNORE_INDEX", "NUSCENES_CLASSES", "S3DIS_CLASSES", "SCANNET20_CLASSES", "S3DISDataset",
           "ScanNetDataset", "NuScenesDataset", "NuScenesPointDataset", "SyntheticIndoorDataset", "SyntheticDrivingDataset",
           "EpochSeededSampler", "SampleDraw",
           "ImageSegmentationDataset", "PartUnitsDataset", "ShapeSet", "load_shape_set", "save_shape_set"]
