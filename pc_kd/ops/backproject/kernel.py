"""Triton kernels of the fused back-projection (CUDA; the interpreter runs them on CPU for tests).

One program owns ``BLOCK_N`` points x ``BLOCK_C`` channels and loops over the views inside the kernel, so
the ``[V, N, C]`` tensor of per-view samples never exists: each view's contribution is gathered from the
feature maps (any strides; channels-last maps make the ``BLOCK_C`` loads contiguous) and reduced in
registers. The tap arithmetic is that of :func:`pc_kd.ops.backproject.reference.sample_taps`.
Importing this module imports triton.
"""
import triton
import triton.language as tl


@triton.jit
def _taps(fuv_ptr, vis_ptr, v, offs_n, mask_n, N, h, w, BILINEAR: tl.constexpr):
    """Taps of view ``v`` from its feature-map coordinates ``fuv`` (float64, uv already times the stride
    ratio, as the twin computes them); the bilinear weights are float64 here and float32 after ``_sample``."""
    vis = tl.load(vis_ptr + v * N + offs_n, mask=mask_n, other=0) != 0
    u = tl.load(fuv_ptr + (v * N + offs_n) * 2, mask=mask_n, other=0.0)
    q = tl.load(fuv_ptr + (v * N + offs_n) * 2 + 1, mask=mask_n, other=0.0)
    if BILINEAR:
        x = u - 0.5
        y = q - 0.5
        x0f = tl.floor(x)
        y0f = tl.floor(y)
        fx = x - x0f
        fy = y - y0f
        x0 = tl.minimum(tl.maximum(x0f, 0.0), w - 1.0).to(tl.int32)
        x1 = tl.minimum(tl.maximum(x0f + 1.0, 0.0), w - 1.0).to(tl.int32)
        y0 = tl.minimum(tl.maximum(y0f, 0.0), h - 1.0).to(tl.int32)
        y1 = tl.minimum(tl.maximum(y0f + 1.0, 0.0), h - 1.0).to(tl.int32)
    else:
        x0 = tl.minimum(tl.maximum(tl.floor(u), 0.0), w - 1.0).to(tl.int32)
        y0 = tl.minimum(tl.maximum(tl.floor(q), 0.0), h - 1.0).to(tl.int32)
        x1 = x0
        y1 = y0
        fx = u * 0.0
        fy = u * 0.0
    return vis, x0, x1, y0, y1, fx, fy


@triton.jit
def _weights(fx, fy):
    """The four bilinear weights, computed in float64 and rounded to float32 (as the twin does)."""
    return (((1 - fx) * (1 - fy)).to(tl.float32), (fx * (1 - fy)).to(tl.float32), ((1 - fx) * fy).to(tl.float32),
            (fx * fy).to(tl.float32))


@triton.jit
def _block(N, C, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
    """This program's points and channels, their masks, and the [BLOCK_N, BLOCK_C] mask."""
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    mask_n = offs_n < N
    mask_c = offs_c < C
    return offs_n, offs_c, mask_n, mask_n[:, None] & mask_c[None, :]


@triton.jit
def _gather(feat_ptr, v, offs_c, y, x, mask, s_fv, s_fc, s_fy, s_fx):
    ptr = feat_ptr + v * s_fv + offs_c[None, :] * s_fc + y[:, None] * s_fy + x[:, None] * s_fx
    return tl.load(ptr, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _sample(feat_ptr, v, offs_c, x0, x1, y0, y1, fx, fy, mask, s_fv, s_fc, s_fy, s_fx, BILINEAR: tl.constexpr):
    if BILINEAR:
        w00, w01, w10, w11 = _weights(fx, fy)
        s = _gather(feat_ptr, v, offs_c, y0, x0, mask, s_fv, s_fc, s_fy, s_fx) * w00[:, None]
        s += _gather(feat_ptr, v, offs_c, y0, x1, mask, s_fv, s_fc, s_fy, s_fx) * w01[:, None]
        s += _gather(feat_ptr, v, offs_c, y1, x0, mask, s_fv, s_fc, s_fy, s_fx) * w10[:, None]
        s += _gather(feat_ptr, v, offs_c, y1, x1, mask, s_fv, s_fc, s_fy, s_fx) * w11[:, None]
    else:
        s = _gather(feat_ptr, v, offs_c, y0, x0, mask, s_fv, s_fc, s_fy, s_fx)
    return s


@triton.jit
def backproject_fwd_kernel(feat_ptr, fuv_ptr, vis_ptr, acc_ptr, arg_ptr, cnt_ptr, N, C, V, view0, h, w,
                           s_fv, s_fc, s_fy, s_fx, BILINEAR: tl.constexpr, REDUCE_MAX: tl.constexpr,
                           BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
    """acc [N, C] (float32, accumulated in place) and cnt [N] (int32, in place) over the V views of this group,
    the first of which is view ``view0`` of the scene. For a max, arg [N, C] (int32, in place) keeps the scene
    index of the first view that attains it, which the backward reads instead of recomputing samples."""
    offs_n, offs_c, mask_n, out_mask = _block(N, C, BLOCK_N, BLOCK_C)
    acc_ptrs = acc_ptr + offs_n[:, None] * C + offs_c[None, :]
    acc = tl.load(acc_ptrs, mask=out_mask, other=0.0)
    if REDUCE_MAX:
        arg = tl.load(arg_ptr + offs_n[:, None] * C + offs_c[None, :], mask=out_mask, other=-1)
    cnt = tl.load(cnt_ptr + offs_n, mask=mask_n, other=0)
    for v in range(V):
        vis, x0, x1, y0, y1, fx, fy = _taps(fuv_ptr, vis_ptr, v, offs_n, mask_n, N, h, w, BILINEAR)
        m = vis[:, None] & out_mask
        s = _sample(feat_ptr, v, offs_c, x0, x1, y0, y1, fx, fy, m, s_fv, s_fc, s_fy, s_fx, BILINEAR)
        if REDUCE_MAX:
            better = m & (s > acc)
            acc = tl.where(better, s, acc)
            arg = tl.where(better, view0 + v, arg)
        else:
            acc += tl.where(m, s, 0.0)
        cnt += vis.to(tl.int32)
    tl.store(acc_ptrs, acc, mask=out_mask)
    if REDUCE_MAX:
        tl.store(arg_ptr + offs_n[:, None] * C + offs_c[None, :], arg, mask=out_mask)
    if tl.program_id(1) == 0:
        tl.store(cnt_ptr + offs_n, cnt, mask=mask_n)


@triton.jit
def _scatter(grad_ptr, v, offs_c, y, x, val, mask, s_gv, s_gc, s_gy, s_gx):
    ptr = grad_ptr + v * s_gv + offs_c[None, :] * s_gc + y[:, None] * s_gy + x[:, None] * s_gx
    tl.atomic_add(ptr, val, mask=mask)


@triton.jit
def backproject_bwd_kernel(grad_ptr, gout_ptr, arg_ptr, fuv_ptr, vis_ptr, N, C, V, view0, h, w,
                           s_gv, s_gc, s_gy, s_gx, BILINEAR: tl.constexpr, REDUCE_MAX: tl.constexpr,
                           BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr):
    """grad [V, C, h, w] (float32, atomics) += taps' weights x gout [N, C] (already / count for a mean); for a
    max only the view recorded in arg [N, C] by the forward receives it."""
    offs_n, offs_c, mask_n, io_mask = _block(N, C, BLOCK_N, BLOCK_C)
    g = tl.load(gout_ptr + offs_n[:, None] * C + offs_c[None, :], mask=io_mask, other=0.0)
    if REDUCE_MAX:
        arg = tl.load(arg_ptr + offs_n[:, None] * C + offs_c[None, :], mask=io_mask, other=-1)
    for v in range(V):
        vis, x0, x1, y0, y1, fx, fy = _taps(fuv_ptr, vis_ptr, v, offs_n, mask_n, N, h, w, BILINEAR)
        m = vis[:, None] & io_mask
        if REDUCE_MAX:
            m = m & (arg == view0 + v)
        if BILINEAR:
            w00, w01, w10, w11 = _weights(fx, fy)
            _scatter(grad_ptr, v, offs_c, y0, x0, g * w00[:, None], m, s_gv, s_gc, s_gy, s_gx)
            _scatter(grad_ptr, v, offs_c, y0, x1, g * w01[:, None], m, s_gv, s_gc, s_gy, s_gx)
            _scatter(grad_ptr, v, offs_c, y1, x0, g * w10[:, None], m, s_gv, s_gc, s_gy, s_gx)
            _scatter(grad_ptr, v, offs_c, y1, x1, g * w11[:, None], m, s_gv, s_gc, s_gy, s_gx)
        else:
            _scatter(grad_ptr, v, offs_c, y0, x0, g, m, s_gv, s_gc, s_gy, s_gx)
