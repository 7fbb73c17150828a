"""Voxelization, point<->voxel maps and super-voxels."""
from .segments import load_segment_file, scannet_mesh_segments
from .supervoxels import estimate_normals, supervoxels
from .voxelize import Voxels, voxel_reduce, voxel_to_point, voxelize

__all__ = ["load_segment_file", "scannet_mesh_segments", "estimate_normals", "supervoxels", "Voxels", "voxel_reduce", "voxel_to_point", "voxelize"]
