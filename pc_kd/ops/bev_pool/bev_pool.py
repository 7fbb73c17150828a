"""Public entry of BEV pooling."""
import os

import torch

from ..backproject.function import triton_available
from .function import BEVPoolFunction, interval_plan
from .grid import BEVGrid, assign_cells
from .reference import bev_pool_reference


def bev_pool(depth: torch.Tensor, context: torch.Tensor, frustum_xyz: torch.Tensor, grid, *,
             impl: str = "auto") -> torch.Tensor:
    """Lift-splat pooling into a BEV grid.

    Args:
        depth: ``[B, Ncam, D, h, w]`` depth distribution (weights) of each pixel over D depth bins.
        context: ``[B, Ncam, C, h, w]`` image features.
        frustum_xyz: ``[B, Ncam, D, h, w, 3]`` position (metres, BEV frame: x forward/right as the grid, z up)
            of every (camera, depth bin, pixel) frustum point.
        grid: :class:`BEVGrid`, a dict of its fields, or ``(x_range, y_range, z_range, (dx, dy))``.
        impl: ``auto`` (Triton kernel on CUDA, else the PyTorch twin), ``torch`` or ``triton``.

    Returns:
        ``[B, C, H, W]``: ``bev[b, :, i, j] = sum of depth[p] * context[pixel(p)]`` over the frustum points p of
        sample b in cell (i, j) (row i along y, column j along x). Differentiable with respect to ``depth`` and
        ``context``. The ``[B, Ncam, D, h, w, C]`` frustum-feature tensor is never formed. The result is laid
        out channels-last (a permuted view of ``[B, H, W, C]`` rows), which conv2d reads as it is.
    """
    grid = BEVGrid.from_any(grid)
    if depth.ndim != 5:
        raise ValueError(f"bev_pool: depth must be [B, Ncam, D, h, w], got {tuple(depth.shape)}")
    b, n, d, h, w = depth.shape
    if context.ndim != 5 or context.shape[:2] != (b, n) or context.shape[3:] != (h, w):
        raise ValueError(f"bev_pool: context must be [B, Ncam, C, h, w] = [{b}, {n}, C, {h}, {w}], got "
                         f"{tuple(context.shape)}")
    if tuple(frustum_xyz.shape) != (b, n, d, h, w, 3):
        raise ValueError(f"bev_pool: frustum_xyz must be [B, Ncam, D, h, w, 3] = {[b, n, d, h, w, 3]}, got "
                         f"{list(frustum_xyz.shape)}")
    if not torch.isfinite(frustum_xyz).all():
        raise ValueError("bev_pool: frustum_xyz has NaN or inf coordinates")
    impl = os.environ.get("PC_KD_BEV_POOL_IMPL", impl) if impl == "auto" else impl
    if impl == "auto":
        impl = "triton" if depth.is_cuda and triton_available() else "torch"
    if impl not in ("torch", "triton"):
        raise ValueError(f"bev_pool: impl must be 'auto', 'torch' or 'triton', got {impl!r}")
    H, W = grid.shape
    cells = assign_cells(frustum_xyz, grid)
    if impl == "triton":
        out = BEVPoolFunction.apply(depth, context, interval_plan(cells.cell), cells.num_cells)
    else:
        out = bev_pool_reference(depth, context, cells.cell, cells.num_cells)
    return out.view(b, H, W, -1).permute(0, 3, 1, 2)
