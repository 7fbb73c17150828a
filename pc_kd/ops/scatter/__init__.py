"""Segment reductions of point features (points -> voxels, BEV cells, super-voxels)."""
from .scatter import scatter_reduce_points

__all__ = ["scatter_reduce_points"]
