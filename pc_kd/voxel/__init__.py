"""Voxelization, point<->voxel maps, super-voxels, super-point files, LiDAR segment proposals (range image)."""
from .range_segments import LidarSegments, RangeImage, lidar_segments, range_image
from .segments import load_segment_file, scannet_mesh_segments
from .superpoint_files import superpoint_labels, write_superpoints
from .supervoxels import estimate_normals, supervoxels
from .voxelize import Voxels, voxel_reduce, voxel_to_point, voxelize

__all__ = ["LidarSegments", "RangeImage", "lidar_segments", "range_image", "load_segment_file",
           "scannet_mesh_segments", "superpoint_labels", "write_superpoints", "estimate_normals", "supervoxels",
           "Voxels", "voxel_reduce", "voxel_to_point", "voxelize"]
