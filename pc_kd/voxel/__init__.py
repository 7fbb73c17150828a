"""Voxelization, point<->voxel maps and super-voxels."""
from .voxelize import Voxels, voxel_reduce, voxel_to_point, voxelize

__all__ = ["Voxels", "voxel_reduce", "voxel_to_point", "voxelize"]
