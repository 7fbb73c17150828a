"""pc_kd: cross-modal knowledge distillation into 3D point clouds, voxels and BEV grids.

Importing pc_kd never needs a GPU, spconv or open3d; those are imported where they are used.
"""
__version__ = "0.1.0"
