"""Kernels and backend shims. Importing pc_kd.ops needs no GPU, no triton and no sparse-conv backend.

One folder per op: public function, autograd Function, Triton kernel (imported only when used) and a
reference twin in plain PyTorch that is also the CPU path.
"""
from .bev_pool import BEVGrid, bev_pool
from .chamfer import chamfer_distance
from .nms import circle_nms
from .point_groups import farthest_point_sample, group_neighbourhoods, knn_indices
from .scatter import scatter_reduce_points

__all__ = ["BEVGrid", "bev_pool", "chamfer_distance", "circle_nms", "farthest_point_sample", "group_neighbourhoods",
           "knn_indices", "scatter_reduce_points"]
