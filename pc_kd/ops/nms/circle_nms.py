"""Circle NMS of CenterPoint: greedy by score, a kept centre suppresses every later centre whose *squared*
BEV distance to it is <= ``radius_sq`` (CenterPoint's configs call that threshold a radius, e.g. 4 m for
cars, but compare it with the squared distance; kept here so its published settings mean the same)."""
from typing import Optional

import numba
import numpy as np
import torch


def _check(centers: torch.Tensor, scores: torch.Tensor, radius_sq: float) -> None:
    if centers.dim() != 2 or centers.shape[1] != 2:
        raise ValueError(f"circle_nms: centers must be [N, 2] (x, y), got {tuple(centers.shape)}")
    if scores.shape != (centers.shape[0],):
        raise ValueError(f"circle_nms: scores must be [N] = [{centers.shape[0]}], got {tuple(scores.shape)}")
    if not (torch.isfinite(centers).all() and torch.isfinite(scores).all()):
        raise ValueError("circle_nms: centers and scores must be finite (drop NaN / inf boxes first)")
    if not radius_sq >= 0:
        raise ValueError(f"circle_nms: radius_sq must be >= 0, got {radius_sq}")


def _order(scores: torch.Tensor) -> torch.Tensor:
    """Indices by descending score; equal scores keep their input order."""
    return torch.sort(scores, descending=True, stable=True).indices


@numba.njit(cache=True)
def _greedy(xy: np.ndarray, radius_sq: float, post_max: int) -> np.ndarray:
    n = xy.shape[0]
    suppressed = np.zeros(n, dtype=np.bool_)
    keep = np.empty(n, dtype=np.int64)
    count = 0
    for i in range(n):
        if suppressed[i]:
            continue
        keep[count] = i
        count += 1
        if count == post_max:
            break
        for j in range(i + 1, n):
            if not suppressed[j]:
                dx, dy = xy[i, 0] - xy[j, 0], xy[i, 1] - xy[j, 1]
                if dx * dx + dy * dy <= radius_sq:
                    suppressed[j] = True
    return keep[:count]


def circle_nms(centers: torch.Tensor, scores: torch.Tensor, radius_sq: float,
               post_max: Optional[int] = None) -> torch.Tensor:
    """Greedy circle NMS.

    Args:
        centers: ``[N, 2]`` BEV centres (x, y) in metres, any frame.
        scores: ``[N]``.
        radius_sq: a centre within this *squared* distance (m^2) of a kept, higher-scored centre is dropped.
        post_max: keep at most this many (CenterPoint: 83).

    Returns:
        ``[K]`` int64 indices into the inputs, by descending score (ties: input order), on the inputs' device.
    """
    _check(centers, scores, radius_sq)
    order = _order(scores)
    xy = centers[order].detach().to("cpu", torch.float64).numpy()
    limit = len(xy) if post_max is None else int(post_max)
    keep = _greedy(np.ascontiguousarray(xy), float(radius_sq), limit) if limit > 0 else np.zeros(0, np.int64)
    return order[torch.from_numpy(keep).to(order.device)]


def circle_nms_loop(centers: torch.Tensor, scores: torch.Tensor, radius_sq: float,
                    post_max: Optional[int] = None) -> torch.Tensor:
    """Reference twin of :func:`circle_nms`: the same greedy rule as a plain Python loop (slow; for tests)."""
    _check(centers, scores, radius_sq)
    order = _order(scores).tolist()
    xy = centers.detach().double().cpu().tolist()
    keep = []
    for i in order:
        if post_max is not None and len(keep) >= post_max:
            break
        if all((xy[i][0] - xy[k][0]) ** 2 + (xy[i][1] - xy[k][1]) ** 2 > radius_sq for k in keep):
            keep.append(i)
    return torch.tensor(keep, dtype=torch.int64, device=centers.device)
