"""Synthetic indoor and driving scenes with the data layout of the real datasets."""
from .datasets import SyntheticDrivingDataset, SyntheticIndoorDataset
from .indoor import INDOOR_CLASSES, make_indoor_scene, render_views
from .writer import write_driving_dataset, write_indoor_dataset

__all__ = ["SyntheticDrivingDataset", "SyntheticIndoorDataset", "write_driving_dataset", "INDOOR_CLASSES", "make_indoor_scene", "render_views",
           "write_indoor_dataset"]
