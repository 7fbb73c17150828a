"""Autograd Function of BEV pooling on the Triton kernels, with the interval plan they need."""
from typing import NamedTuple

import torch


class IntervalPlan(NamedTuple):
    """In-grid frustum points sorted by cell: ``point`` (flat index into depth), ``pixel`` (flat context row),
    ``cell`` per point; and per interval of equal cell: ``start``, ``length``, ``interval_cell``."""

    point: torch.Tensor
    pixel: torch.Tensor
    cell: torch.Tensor
    start: torch.Tensor
    length: torch.Tensor
    interval_cell: torch.Tensor


def interval_plan(cell: torch.Tensor) -> IntervalPlan:
    """Plan for ``cell [B, Ncam, D, h, w]`` (-1 outside the grid). Depends on geometry only: cache it when the
    camera rig does not move."""
    b, n, d, h, w = cell.shape
    flat = cell.reshape(-1)
    point = torch.nonzero(flat >= 0).squeeze(1)
    ranks = flat[point]
    order = torch.argsort(ranks, stable=True)
    point, ranks = point[order], ranks[order]
    # pixel of flat point index ((bi * n + ni) * d + di) * h * w + yx -> context row (bi * n + ni) * h * w + yx
    pixel = (point // (d * h * w)) * (h * w) + point % (h * w)
    interval_cell, length = torch.unique_consecutive(ranks, return_counts=True)
    start = torch.cumsum(length, 0) - length
    return IntervalPlan(point, pixel, ranks, start, length, interval_cell)


def _as_int32(*tensors):
    return [t.to(torch.int32).contiguous() for t in tensors]


class BEVPoolFunction(torch.autograd.Function):
    """``(depth [B, Ncam, D, h, w], context [B, Ncam, C, h, w], plan, num_cells) -> [num_cells, C]``."""

    @staticmethod
    def forward(ctx, depth, context, plan: IntervalPlan, num_cells: int):
        from .kernel import bev_pool_fwd_kernel

        c = context.shape[2]
        rows = context.permute(0, 1, 3, 4, 2).reshape(-1, c).float().contiguous()
        dep = depth.reshape(-1).float().contiguous()
        out = torch.zeros(num_cells, c, dtype=torch.float32, device=depth.device)
        point, pixel, start, length, icell = _as_int32(plan.point, plan.pixel, plan.start, plan.length,
                                                       plan.interval_cell)
        block_c = min(128, max(16, 1 << (c - 1).bit_length()))
        if len(start) and c:
            bev_pool_fwd_kernel[(len(start), triton_cdiv(c, block_c))](dep, rows, out, point, pixel, start, length,
                                                                        icell, c, BLOCK_C=block_c)
        ctx.save_for_backward(dep, rows)
        ctx.plan, ctx.shapes = plan, (depth.shape, context.shape, depth.dtype, context.dtype)
        return out.to(context.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        from .kernel import bev_pool_bwd_kernel

        dep, rows = ctx.saved_tensors
        depth_shape, context_shape, depth_dtype, context_dtype = ctx.shapes
        b, n, c, h, w = context_shape
        grad_depth = torch.zeros_like(dep)
        grad_rows = torch.zeros_like(rows)
        plan = ctx.plan
        m = len(plan.point)
        if m and c:
            point, pixel, cell = _as_int32(plan.point, plan.pixel, plan.cell)
            block_c = min(64, max(16, 1 << (c - 1).bit_length()))
            bev_pool_bwd_kernel[(triton_cdiv(m, 64),)](grad_out.float().contiguous(), dep, rows, grad_depth,
                                                       grad_rows, point, pixel, cell, m, c, BLOCK_M=64,
                                                       BLOCK_C=block_c)
        grad_context = grad_rows.view(b, n, h, w, c).permute(0, 1, 4, 2, 3).to(context_dtype)
        return grad_depth.view(depth_shape).to(depth_dtype), grad_context, None, None


def triton_cdiv(a: int, b: int) -> int:
    return (a + b - 1) // b
