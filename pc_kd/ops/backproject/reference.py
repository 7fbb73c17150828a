"""Reference twin of the fused back-projection: plain PyTorch, the CPU path, memory-bounded by chunking.

Accumulates into a channel-first ``[C, N]`` buffer (returned to the caller as its ``[N, C]`` transpose, a
view), so nothing of size ``[V, N, C]`` or a second ``[N, C]`` is ever built: beyond the output it holds one
``[C, chunk]`` sample at a time.
"""
from typing import Tuple

import torch

CHUNK = 16384  # visible points sampled at once per view


def sample_taps(uv: torch.Tensor, image_hw: Tuple[int, int], feat_hw: Tuple[int, int], bilinear: bool):
    """Feature-map taps of image points ``uv [n, 2]`` (pixels of an ``image_hw`` image).

    The feature map covers the image with stride ``(H / h, W / w)``; its cell (i, j) has its centre at image
    pixel coordinates ``((j + 0.5) W / w, (i + 0.5) H / h)``. Bilinear taps clamp at the border (replicate);
    nearest takes the cell containing the point.

    Returns ``index [T, n]`` int64 (``y * w + x``) and ``weight [T, n]`` in uv's dtype, T = 4 (bilinear) or 1.
    """
    (H, W), (h, w) = image_hw, feat_hw
    sx, sy = w / W, h / H
    u, v = uv[:, 0], uv[:, 1]
    if not bilinear:
        ix = torch.floor(u * sx).clamp(0, w - 1).long()
        iy = torch.floor(v * sy).clamp(0, h - 1).long()
        return (iy * w + ix)[None], torch.ones_like(u)[None]
    x, y = u * sx - 0.5, v * sy - 0.5
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    xs = (x0.clamp(0, w - 1).long(), (x0 + 1).clamp(0, w - 1).long())
    ys = (y0.clamp(0, h - 1).long(), (y0 + 1).clamp(0, h - 1).long())
    index = torch.stack([ys[0] * w + xs[0], ys[0] * w + xs[1], ys[1] * w + xs[0], ys[1] * w + xs[1]])
    weight = torch.stack([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy])
    return index, weight


def _view_chunks(uv_v: torch.Tensor, visible_v: torch.Tensor, image_hw, feat_hw, bilinear: bool):
    points = torch.nonzero(visible_v).squeeze(1)
    for start in range(0, len(points), CHUNK):
        idx = points[start:start + CHUNK]
        index, weight = sample_taps(uv_v[idx], image_hw, feat_hw, bilinear)
        yield idx, index, weight


def _sample(fv: torch.Tensor, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``[C, n]`` samples of the ``[C, h*w]`` map ``fv`` at the taps."""
    out = fv.index_select(1, index[0]) * weight[0].to(fv.dtype)
    for t in range(1, len(index)):
        out += fv.index_select(1, index[t]) * weight[t].to(fv.dtype)
    return out


def accumulate_reference(acc_cf: torch.Tensor, count: torch.Tensor, feats: torch.Tensor, uv: torch.Tensor,
                         visible: torch.Tensor, image_hw, bilinear: bool, reduce_max: bool) -> None:
    """Add (or max) the samples of views ``feats [Vg, C, h, w]`` at ``uv [Vg, N, 2]`` where ``visible
    [Vg, N]`` into ``acc_cf [C, N]`` and count the views in ``count [N]`` (both updated in place)."""
    vg, c, h, w = feats.shape
    for v in range(vg):
        fv = feats[v].reshape(c, h * w)
        for idx, index, weight in _view_chunks(uv[v], visible[v], image_hw, (h, w), bilinear):
            sample = _sample(fv, index, weight)
            if reduce_max:
                acc_cf.scatter_reduce_(1, idx[None].expand(c, -1), sample, reduce="amax")
            else:
                acc_cf.index_add_(1, idx, sample)
        count += visible[v]


def backward_reference(grad_feats: torch.Tensor, grad_cf: torch.Tensor, out_cf: torch.Tensor,
                       feats: torch.Tensor, uv: torch.Tensor, visible: torch.Tensor, image_hw, bilinear: bool,
                       reduce_max: bool) -> None:
    """Scatter ``grad_cf [C, N]`` (already divided by the view count for a mean) back onto the taps of the
    views in ``grad_feats [Vg, C, h, w]``. For max, every view whose sample equals the output gets it."""
    vg, c, h, w = feats.shape
    for v in range(vg):
        gv = grad_feats[v].view(c, h * w)
        fv = feats[v].reshape(c, h * w)
        for idx, index, weight in _view_chunks(uv[v], visible[v], image_hw, (h, w), bilinear):
            g = grad_cf.index_select(1, idx)
            if reduce_max:
                g = g * (_sample(fv, index, weight) == out_cf.index_select(1, idx))
            for t in range(len(index)):
                gv.index_add_(1, index[t], g * weight[t].to(g.dtype))
