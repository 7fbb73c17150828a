"""Reference twin of the fused back-projection: plain PyTorch, the CPU path, memory-bounded.

Layout and loop order are chosen for the CPU's caches:

* the output is accumulated channel-first, ``acc [C, N]`` (handed to the caller as its ``[N, C]``
  transpose, a view), so nothing of size ``[V, N, C]`` or a second ``[N, C]`` is ever built;
* the visible (view, point) pairs of a batch of views are listed sparsely (point, taps, weights), sorted by
  feature-map position, then accumulated **one block of channels at a time** over all those views: a block's
  slice of ``acc`` (a few MB) stays in the last-level cache while every view adds into it, and each view's
  feature rows are read once per block. On 2 CPU cores this is ~4x faster than adding whole-channel samples
  view after view (the scattered column writes into a 410 MB ``acc`` are what cost);
* beyond the output, memory holds one batch of pairs (``function.pair_budget``), two reused sample buffers
  (:class:`Scratch`) and one view's geometry: on the CPU the pairs come from one numba pass per view
  (``cpu_pairs.py``), so the peak beyond the inputs stays within ~1.1x the output (``bench_backproject.py``).
"""
from typing import List, Tuple

import torch

CACHE_BYTES = 8 << 20  # size of the acc slice kept hot while the views add into it


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


class ViewPairs:
    """Visible pairs of one view: ``points [n]`` int64 (rows of the output), ``index [T, n]`` taps, ``weight
    [T, n]`` (None for nearest sampling), ordered by ``index[0]`` so that gathers along a feature row walk memory
    forwards (``ordered=True``: they already are)."""

    def __init__(self, view: int, points: torch.Tensor, index: torch.Tensor, weight=None, ordered: bool = False):
        if not ordered:
            order = torch.argsort(index[0])
            points, index = points[order], index[:, order]
            weight = weight[:, order] if weight is not None else None
        self.view, self.points, self.index, self.weight = view, points, index, weight

    @classmethod
    def from_chunks(cls, view: int, chunks, image_hw, feat_hw, bilinear: bool, dtype) -> "ViewPairs":
        """The pairs of view ``view`` from its geometry in chunks of points: ``(point0, uv [n, 2], visible [n])``,
        the chunk's points being rows ``point0:point0 + n`` of the output."""
        points, index, weight = [], [], []
        for point0, uv_v, visible_v in chunks:
            p = torch.nonzero(visible_v).squeeze(1)
            i, w = sample_taps(uv_v[p], image_hw, feat_hw, bilinear)
            points.append(p + point0)
            index.append(i)
            if bilinear:
                weight.append(w.to(dtype))
        if len(points) == 1:
            return cls(view, points[0], index[0], weight[0] if bilinear else None)
        return cls(view, torch.cat(points), torch.cat(index, 1), torch.cat(weight, 1) if bilinear else None)

    @property
    def nbytes(self) -> int:
        tensors = (self.points, self.index) + ((self.weight,) if self.weight is not None else ())
        return sum(t.numel() * t.element_size() for t in tensors)


def sample(rows: torch.Tensor, pairs: ViewPairs, scratch=None) -> torch.Tensor:
    """``[c, n]`` samples of feature rows ``[c, h*w]`` at the pairs' taps; written into ``scratch`` (a
    :class:`Scratch`) when given, so that a loop over views and channel blocks reuses two buffers instead of
    allocating a sample tensor per step. Rows of a channels-last map (a cell's channels contiguous) are gathered
    cell by cell and handed back as the ``[c, n]`` transpose of ``[n, c]``."""
    c, n = rows.shape[0], pairs.points.numel()
    cells = rows.stride(0) == 1 and c > 1

    def gather(buffer: int, tap: int) -> torch.Tensor:
        shape = (n, c) if cells else (c, n)
        out = scratch.take(buffer, *shape) if scratch is not None else rows.new_empty(shape)
        if cells:
            return torch.index_select(rows.t(), 0, pairs.index[tap], out=out).t()
        return torch.index_select(rows, 1, pairs.index[tap], out=out)

    out = gather(0, 0)
    if pairs.weight is None:
        return out
    out *= pairs.weight[0]
    for t in range(1, pairs.index.shape[0]):
        tmp = gather(1, t)
        tmp *= pairs.weight[t]
        out += tmp
    return out


class Scratch:
    """Two flat buffers, grown to the largest ``[c, n]`` asked for, handed out as contiguous ``[c, n]`` views."""

    def __init__(self, like: torch.Tensor):
        self.like, self.buffers = like, [like.new_empty(0), like.new_empty(0)]

    def take(self, i: int, c: int, n: int) -> torch.Tensor:
        if self.buffers[i].numel() < c * n:
            self.buffers[i] = self.like.new_empty(c * n)
        return self.buffers[i][:c * n].view(c, n)


def channel_blocks(c: int, n: int, itemsize: int) -> List[slice]:
    """Channel slices whose ``[block, n]`` accumulator slice is about CACHE_BYTES."""
    block = max(1, min(c, CACHE_BYTES // max(1, n * itemsize)))
    return [slice(c0, min(c0 + block, c)) for c0 in range(0, c, block)]


def accumulate_reference(acc_cf: torch.Tensor, feats: torch.Tensor, batch: List[ViewPairs], reduce_max: bool):
    """Add (or max) the samples of the views in ``batch`` from ``feats [V, C, h, w]`` into ``acc_cf [C, N]``."""
    _, c, h, w = feats.shape
    scratch = Scratch(feats)
    for block in channel_blocks(c, acc_cf.shape[1], acc_cf.element_size()):
        acc = acc_cf[block]
        for pairs in batch:
            s = sample(feats[pairs.view, block].reshape(-1, h * w), pairs, scratch)
            if reduce_max:
                acc.scatter_reduce_(1, pairs.points[None].expand(s.shape[0], -1), s, reduce="amax")
            else:
                acc.index_add_(1, pairs.points, s)


def backward_reference(grad_feats: torch.Tensor, grad_cf: torch.Tensor, out_cf, feats: torch.Tensor,
                       batch: List[ViewPairs], taken=None) -> None:
    """Scatter ``grad_cf [C, N]`` (already divided by the view count for a mean) onto the taps of the views in
    ``batch`` in ``grad_feats [V, C, h, w]``. With ``out_cf`` (max), only where the view's sample equals the
    output and no earlier view has taken it: ``taken [C, N]`` bool, updated in place, so that of tied views
    the first (views are visited in order) receives the gradient."""
    _, c, h, w = feats.shape
    scratch = Scratch(feats)
    for block in channel_blocks(c, grad_cf.shape[1], grad_cf.element_size()):
        g_block = grad_cf[block]
        for pairs in batch:
            g = g_block.index_select(1, pairs.points)
            if out_cf is not None:
                view_rows = feats[pairs.view, block].reshape(-1, h * w)
                hit = sample(view_rows, pairs, scratch) == out_cf[block].index_select(1, pairs.points)
                taken_block = taken[block]
                hit &= ~taken_block.index_select(1, pairs.points)
                taken_block[:, pairs.points] |= hit
                g *= hit
            rows = grad_feats[pairs.view, block].view(-1, h * w)
            for t in range(pairs.index.shape[0]):
                rows.index_add_(1, pairs.index[t], g if pairs.weight is None else g * pairs.weight[t])
