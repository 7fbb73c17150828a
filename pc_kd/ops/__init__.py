"""Kernels and backend shims. Importing pc_kd.ops needs no GPU, no triton and no sparse-conv backend.

One folder per op: public function, autograd Function, Triton kernel (imported only when used) and a
reference twin in plain PyTorch that is also the CPU path.
"""
from .bev_pool import BEVGrid, bev_pool
from .nms import circle_nms
from .scatter import scatter_reduce_points

__all__ = ["BEVGrid", "bev_pool", "circle_nms", "scatter_reduce_points"]
