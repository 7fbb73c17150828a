"""Chamfer distance between point sets, as the masked point modelling anchors (Point-MAE, ACT, ReCon) define it
with their ``chamfer_dist`` extension, in plain PyTorch with gradients."""
import torch

KINDS = ("l1", "l2")


def chamfer_distance(a: torch.Tensor, b: torch.Tensor, kind: str = "l2", eps: float = 1e-12) -> torch.Tensor:
    """``[B]`` Chamfer distance between ``a [B, N, 3]`` and ``b [B, M, 3]``. With ``d1 [B, N]`` the squared distance
    of each point of ``a`` to its nearest point of ``b`` and ``d2 [B, M]`` the other way round:

    - ``kind="l2"`` (CD-L2): ``mean d1 + mean d2``;
    - ``kind="l1"`` (CD-L1): ``(mean sqrt d1 + mean sqrt d2) / 2``.

    The anchors take the sqrt of exactly 0 for a point on top of another, whose gradient is infinite (NaN after the
    chain rule); here the square root is of ``max(d, eps)``, which moves CD-L1 by at most ``sqrt(eps)`` = 1e-6 and
    keeps the gradient finite. The anchors reduce with a mean over the batch; take ``.mean()`` for that. Empty sets
    raise (the mean of nothing)."""
    if kind not in KINDS:
        raise ValueError(f"chamfer_distance: kind must be one of {KINDS}, got {kind!r}")
    for name, x in (("a", a), ("b", b)):
        if x.dim() != 3 or x.shape[-1] != 3 or not x.is_floating_point():
            raise ValueError(f"chamfer_distance: {name} must be a float [B, N, 3] tensor, got {tuple(x.shape)}")
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"chamfer_distance: batch sizes differ ({a.shape[0]} and {b.shape[0]})")
    if a.shape[1] == 0 or b.shape[1] == 0:
        raise ValueError(f"chamfer_distance: empty point set (a has {a.shape[1]} points, b {b.shape[1]})")
    sq = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist") ** 2  # [B, N, M]
    d1, d2 = sq.min(2).values, sq.min(1).values
    if kind == "l2":
        return d1.mean(1) + d2.mean(1)
    return (d1.clamp_min(eps).sqrt().mean(1) + d2.clamp_min(eps).sqrt().mean(1)) / 2
