"""Autograd Function of the fused back-projection and its two implementations (Triton on CUDA, the
PyTorch twin elsewhere). The geometry arrives as a *plan*: an object with ``num_points``, ``image_hw``,
``view_pairs(feat_hw, bilinear, dtype)`` (the twin's :class:`ViewPairs`, view by view) and ``groups()``, which
yields ``(views: slice, points: slice, uv [Vg, n, 2] float64, visible [Vg, n] bool)`` a few
views at a time: views ``views`` of ``feats`` see rows ``points`` of the output (one scene of a ragged batch), so
that per-view geometry never needs ``[V, N]`` memory for all views at once and a batch of scenes fills one
output."""
import os

import torch

from .reference import ViewPairs, accumulate_reference, backward_reference

IMPLS = ("auto", "torch", "triton")


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def choose_impl(feats: torch.Tensor, impl: str = "auto") -> str:
    """``triton`` for CUDA tensors when triton imports (or when forced), else ``torch`` (the twin).
    ``PC_KD_BACKPROJECT_IMPL`` overrides ``auto``."""
    impl = os.environ.get("PC_KD_BACKPROJECT_IMPL", impl) if impl == "auto" else impl
    if impl not in IMPLS:
        raise ValueError(f"backproject impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        return "triton" if feats.is_cuda and triton_available() else "torch"
    return impl


def _launch_grid(n, c, block_n, block_c):
    return ((n + block_n - 1) // block_n, (c + block_c - 1) // block_c)


def _blocks(c):
    block_c = min(64, max(16, 1 << (max(c, 1) - 1).bit_length()))
    return 32, block_c


def _feature_map_uv(uv, image_hw, feat_hw):
    """``uv [Vg, N, 2]`` image pixels -> float64 feature-map coordinates, ``uv * (w / W, h / H)`` in the same
    float64 arithmetic as the twin's ``sample_taps``, so that both choose the same taps."""
    (H, W), (h, w) = image_hw, feat_hw
    return (uv.double() * uv.new_tensor([w / W, h / H], dtype=torch.float64)).contiguous()


def _forward_triton(feats, plan, bilinear, reduce_max):
    from .kernel import backproject_fwd_kernel

    n, (_, c, h, w) = plan.num_points, feats.shape
    acc = torch.full((n, c), float("-inf") if reduce_max else 0.0, dtype=torch.float32, device=feats.device)
    arg = torch.full((n, c) if reduce_max else (0,), -1, dtype=torch.int32, device=feats.device)
    cnt = torch.zeros(n, dtype=torch.int32, device=feats.device)
    block_n, block_c = _blocks(c)
    for views, points, uv, visible in plan.groups():
        fg, m = feats[views], points.stop - points.start
        if m and c and fg.shape[0]:
            backproject_fwd_kernel[_launch_grid(m, c, block_n, block_c)](
                fg, _feature_map_uv(uv, plan.image_hw, (h, w)), visible.to(torch.int8).contiguous(), acc[points],
                arg[points] if reduce_max else arg, cnt[points], m, c, fg.shape[0], views.start, h, w, *fg.stride(),
                BILINEAR=bilinear, REDUCE_MAX=reduce_max, BLOCK_N=block_n, BLOCK_C=block_c)
    return acc, cnt.long(), arg if reduce_max else None


def _backward_triton(grad, arg, feats, plan, bilinear, reduce_max):
    from .kernel import backproject_bwd_kernel

    _, c, h, w = feats.shape
    grad_feats = torch.zeros(feats.shape, dtype=torch.float32, device=feats.device)
    block_n, block_c = _blocks(c)
    grad = grad.float().contiguous()
    arg = arg if reduce_max else grad
    for views, points, uv, visible in plan.groups():
        gg, m = grad_feats[views], points.stop - points.start
        if m and c and gg.shape[0]:
            backproject_bwd_kernel[_launch_grid(m, c, block_n, block_c)](
                gg, grad[points], arg[points], _feature_map_uv(uv, plan.image_hw, (h, w)),
                visible.to(torch.int8).contiguous(), m, c, gg.shape[0], views.start, h, w, *gg.stride(),
                BILINEAR=bilinear, REDUCE_MAX=reduce_max, BLOCK_N=block_n, BLOCK_C=block_c)
    return grad_feats.to(feats.dtype)


def pair_budget(num_points: int, row_bytes: int) -> int:
    """Bytes of view pairs (16-40 B each) accumulated per pass over the output: each pass streams the whole
    ``[C, N]`` accumulator through the cache once, so a batch holds at least ~4 N pairs (its gathers then
    outweigh the pass), but no more than a sixteenth of the output, nor less than 4 MB."""
    return max(4 << 20, min(num_points * row_bytes // 16, 64 * num_points))


def view_pairs_from_groups(plan, feat_hw, bilinear: bool, dtype):
    """The :class:`ViewPairs` of each view from the plan's dense geometry (``groups()``), a view's chunks of
    points gathered (a plan yields them one after another)."""
    view, chunks = None, []
    for views, points, uv, visible in plan.groups():
        for j in range(uv.shape[0]):
            if views.start + j != view and chunks:
                yield ViewPairs.from_chunks(view, chunks, plan.image_hw, feat_hw, bilinear, dtype)
                chunks = []
            view = views.start + j
            chunks.append((points.start, uv[j], visible[j]))
    if chunks:
        yield ViewPairs.from_chunks(view, chunks, plan.image_hw, feat_hw, bilinear, dtype)


def _pair_batches(feats, plan, bilinear, count=None):
    """Lists of :class:`ViewPairs` of about ``pair_budget`` bytes, so the pairs of all views never need to
    exist at once; ``count [N]`` gets each point's visible views. The plan's ``view_pairs`` makes them (on the
    CPU one fused pass per view, else :func:`view_pairs_from_groups`)."""
    budget = pair_budget(plan.num_points, feats.shape[1] * feats.element_size())
    batch, size = [], 0
    for pairs in plan.view_pairs(tuple(feats.shape[2:]), bilinear, feats.dtype):
        if count is not None:
            count[pairs.points] += 1  # a point appears once per view
        batch.append(pairs)
        size += pairs.nbytes
        if size >= budget:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _forward_torch(feats, plan, bilinear, reduce_max):
    acc_cf = feats.new_full((feats.shape[1], plan.num_points), float("-inf") if reduce_max else 0.0)
    count = torch.zeros(plan.num_points, dtype=torch.long, device=feats.device)
    for batch in _pair_batches(feats, plan, bilinear, count):
        accumulate_reference(acc_cf, feats, batch, reduce_max)
    return acc_cf.t(), count, None


def _backward_torch(grad, out, feats, plan, bilinear, reduce_max):
    grad_feats = torch.zeros(feats.shape, dtype=feats.dtype, device=feats.device)
    out_cf = out.t() if reduce_max else None
    taken = torch.zeros(out_cf.shape, dtype=torch.bool, device=feats.device) if reduce_max else None
    for batch in _pair_batches(feats, plan, bilinear):
        backward_reference(grad_feats, grad.t(), out_cf, feats, batch, taken)
    return grad_feats


class BackprojectFunction(torch.autograd.Function):
    """``(feats [V, C, h, w], plan) -> (point_feats [N, C], view_count [N])``; differentiable in ``feats``.
    For ``reduce="max"`` the gradient of a (point, channel) goes to the first view (lowest index) whose sample
    attains the maximum: the Triton kernel records that view in the forward, the twin finds it again."""

    @staticmethod
    def forward(ctx, feats, plan, reduce, bilinear, impl):
        reduce_max = reduce == "max"
        forward = _forward_triton if impl == "triton" else _forward_torch
        out, count, arg = forward(feats, plan, bilinear, reduce_max)
        if reduce == "mean":
            out.div_(count.clamp(min=1)[:, None].to(out.dtype))
        elif reduce_max:
            out.masked_fill_((count == 0)[:, None], 0.0)
        out = out.to(feats.dtype)
        ctx.plan, ctx.reduce, ctx.bilinear, ctx.impl = plan, reduce, bilinear, impl
        # the max's argument: the kernel's recorded views, or the output itself for the twin to compare with
        ctx.save_for_backward(feats, (arg if impl == "triton" else out) if reduce_max else None, count)
        ctx.mark_non_differentiable(count)
        return out, count

    @staticmethod
    def backward(ctx, grad_out, _grad_count):
        feats, max_arg, count = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        grad = grad_out
        if ctx.reduce == "mean":
            grad = grad / count.clamp(min=1)[:, None].to(grad.dtype)
        backward = _backward_triton if ctx.impl == "triton" else _backward_torch
        grad_feats = backward(grad, max_arg, feats, ctx.plan, ctx.bilinear, ctx.reduce == "max")
        return grad_feats, None, None, None, None
