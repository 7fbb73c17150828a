"""Data structures: camera rigs, ragged point batches, 3D boxes, data samples."""
from .boxes import Boxes3D
from .cameras import CameraRig, intrinsics_to_4x4
from .data_sample import Point3DDataSample
from .points import PointBatch, counts_to_offsets, offsets_to_batch_index

__all__ = ["Boxes3D", "CameraRig", "intrinsics_to_4x4", "Point3DDataSample", "PointBatch",
           "counts_to_offsets", "offsets_to_batch_index"]
