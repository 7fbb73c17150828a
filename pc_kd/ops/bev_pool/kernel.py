"""Triton kernels of BEV pooling (CUDA; the interpreter runs them on CPU for tests). Importing this imports
triton.

Forward, BEVPool-v2 style: the frustum points inside the grid are sorted by cell once (``ranks``) and cut
into intervals of equal cell; one program sums one interval for a block of channels and writes the cell
once, no atomics, no frustum-feature tensor. Backward: per point, ``grad_depth = <grad_out[cell],
context[pixel]>``; ``grad_context[pixel] += depth * grad_out[cell]`` with atomics.
"""
import triton
import triton.language as tl


@triton.jit
def bev_pool_fwd_kernel(depth_ptr, ctx_ptr, out_ptr, point_ptr, pixel_ptr, start_ptr, length_ptr, cell_ptr, C,
                        BLOCK_C: tl.constexpr):
    """out [cells, C] (channels-last rows); ctx [pixels, C] rows; intervals over the sorted points."""
    interval = tl.program_id(0)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_c = offs_c < C
    start = tl.load(start_ptr + interval)
    length = tl.load(length_ptr + interval)
    acc = tl.zeros((BLOCK_C,), dtype=tl.float32)
    for i in range(length):
        p = tl.load(point_ptr + start + i)
        q = tl.load(pixel_ptr + start + i)
        dep = tl.load(depth_ptr + p).to(tl.float32)
        acc += dep * tl.load(ctx_ptr + q * C + offs_c, mask=mask_c, other=0.0).to(tl.float32)
    cell = tl.load(cell_ptr + interval)
    tl.store(out_ptr + cell * C + offs_c, acc, mask=mask_c)


@triton.jit
def bev_pool_bwd_kernel(grad_out_ptr, depth_ptr, ctx_ptr, grad_depth_ptr, grad_ctx_ptr, point_ptr, pixel_ptr,
                        cell_ptr, M, C, BLOCK_M: tl.constexpr, BLOCK_C: tl.constexpr):
    """Per block of (in-grid) points: grad_depth [points] and atomic grad_ctx [pixels, C]."""
    offs_m = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < M
    p = tl.load(point_ptr + offs_m, mask=mask_m, other=0)
    q = tl.load(pixel_ptr + offs_m, mask=mask_m, other=0)
    cell = tl.load(cell_ptr + offs_m, mask=mask_m, other=0)
    dep = tl.load(depth_ptr + p, mask=mask_m, other=0.0).to(tl.float32)
    dot = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for c0 in range(0, C, BLOCK_C):
        offs_c = c0 + tl.arange(0, BLOCK_C)
        m = mask_m[:, None] & (offs_c < C)[None, :]
        g = tl.load(grad_out_ptr + cell[:, None] * C + offs_c[None, :], mask=m, other=0.0)
        ctx = tl.load(ctx_ptr + q[:, None] * C + offs_c[None, :], mask=m, other=0.0).to(tl.float32)
        dot += tl.sum(g * ctx, axis=1)
        tl.atomic_add(grad_ctx_ptr + q[:, None] * C + offs_c[None, :], g * dep[:, None], mask=m)
    tl.store(grad_depth_ptr + p, dot, mask=mask_m)
