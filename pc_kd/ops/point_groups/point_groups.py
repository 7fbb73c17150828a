"""Point tokens' grouping (Point-BERT / Point-MAE / ACT / ReCon): farthest point sampling of group centres, the k
nearest points of each centre, and the centred neighbourhoods. Plain PyTorch, batched, on any device."""
from typing import Tuple

import torch


def _check_points(points: torch.Tensor, name: str) -> None:
    if points.dim() != 3 or points.shape[-1] != 3 or not points.is_floating_point():
        raise ValueError(f"{name} must be a float [B, N, 3] tensor, got {tuple(points.shape)} {points.dtype}")


def farthest_point_sample(points: torch.Tensor, num: int) -> torch.Tensor:
    """``[B, num]`` int64 indices of ``num`` centres chosen from ``points [B, N, 3]`` by farthest point sampling as
    pointnet2's ``furthest_point_sample`` does: the first centre is point 0, each next one the point whose squared
    distance to the centres chosen so far is largest (the lowest index among equal distances). Raises when ``num``
    exceeds N."""
    _check_points(points, "farthest_point_sample: points")
    b, n, _ = points.shape
    if not 0 <= num <= n:
        raise ValueError(f"farthest_point_sample: cannot choose {num} centres from {n} points")
    out = torch.zeros(b, num, dtype=torch.long, device=points.device)
    if num == 0:
        return out
    nearest = torch.full((b, n), float("inf"), dtype=points.dtype, device=points.device)
    farthest = torch.zeros(b, dtype=torch.long, device=points.device)
    rows = torch.arange(b, device=points.device)
    for i in range(num):
        out[:, i] = farthest
        centre = points[rows, farthest][:, None]  # [B, 1, 3]
        nearest = torch.minimum(nearest, ((points - centre) ** 2).sum(-1))
        farthest = nearest.argmax(-1)  # the first index of the largest distance
    return out


def knn_indices(points: torch.Tensor, queries: torch.Tensor, k: int) -> torch.Tensor:
    """``[B, M, k]`` int64 indices into ``points [B, N, 3]`` of the ``k`` nearest points of each of ``queries
    [B, M, 3]`` (Euclidean), nearest first. Raises when ``k`` exceeds N."""
    _check_points(points, "knn_indices: points")
    _check_points(queries, "knn_indices: queries")
    if points.shape[0] != queries.shape[0]:
        raise ValueError(f"knn_indices: {points.shape[0]} point clouds for {queries.shape[0]} query sets")
    if not 0 <= k <= points.shape[1]:
        raise ValueError(f"knn_indices: k = {k} neighbours from {points.shape[1]} points")
    dist = torch.cdist(queries, points, compute_mode="donot_use_mm_for_euclid_dist")  # exact, [B, M, N]
    return dist.topk(k, dim=-1, largest=False, sorted=True).indices


def group_neighbourhoods(points: torch.Tensor, num_groups: int, group_size: int
                         ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Point-MAE's ``Group``: ``num_groups`` centres of ``points [B, N, 3]`` by :func:`farthest_point_sample`, the
    ``group_size`` nearest points of each (:func:`knn_indices`), centred on their centre. Returns
    ``(neighbourhoods [B, G, K, 3], centres [B, G, 3], indices [B, G, K])``."""
    centre_idx = farthest_point_sample(points, num_groups)
    centres = torch.gather(points, 1, centre_idx[..., None].expand(-1, -1, 3))
    idx = knn_indices(points, centres, group_size)
    b, g, k = idx.shape
    grouped = torch.gather(points, 1, idx.reshape(b, g * k, 1).expand(-1, -1, 3)).reshape(b, g, k, 3)
    return grouped - centres[:, :, None], centres, idx
