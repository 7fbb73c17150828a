"""Voxelization and point<->voxel maps."""
from .voxelize import Voxels, voxel_mean, voxelize

__all__ = ["Voxels", "voxel_mean", "voxelize"]
