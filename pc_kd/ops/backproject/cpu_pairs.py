"""The CPU twin's view pairs in one numba pass per view: projection, border and depth tests, taps and their
order, with no ``[N]``-sized temporaries beyond the pairs themselves.

The arithmetic is that of :func:`pc_kd.projection.project_points` (``lidar2img @ [x, y, z, 1]``, a float64 dot
product in the order ``x, y, z, 1``, then ``uv = (u z, v z) / z``), of the depth test in
:class:`pc_kd.projection.backproject.ViewPlan` and of :func:`.reference.sample_taps`, operation for operation
in float64, so it chooses the same taps and weights bit for bit (tested against the PyTorch path).
"""
import numba
import numpy as np
import torch

from .reference import ViewPairs

EPS = 1e-5  # in front of the camera: z > EPS, as project_points


def view_pairs_cpu(view: int, points: np.ndarray, lidar2img: np.ndarray, image_hw, feat_hw, border: float,
                   depth_map, depth_stride: int, depth_tol: float, bilinear: bool, dtype: torch.dtype,
                   point0: int = 0) -> ViewPairs:
    """The :class:`ViewPairs` of one view.

    Args:
        points: ``[N, 3]`` float64 C-contiguous, the scene's points (rows ``point0:point0 + N`` of the output).
        lidar2img: ``[4, 4]`` float64, the view's point frame -> image pixels.
        image_hw, feat_hw: ``(H, W)`` of the image and ``(h, w)`` of its feature map.
        border: pixels at the image edge that see nothing.
        depth_map: ``[H // depth_stride, W // depth_stride]`` float64 metres for the depth test, or None.
    """
    (H, W), (h, w) = image_hw, feat_hw
    depth = np.zeros((0, 0)) if depth_map is None else depth_map
    index, weight, rows = _view_pairs(points, lidar2img, float(H), float(W), h, w, float(border), depth,
                                      float(depth_stride), float(depth_tol), bool(bilinear))
    rows += point0
    pairs_weight = torch.from_numpy(weight).to(dtype) if bilinear else None
    return ViewPairs(view, torch.from_numpy(rows), torch.from_numpy(index), pairs_weight, ordered=True)


@numba.njit(cache=True)
def _visible(points, m, H, W, border, depth, depth_stride, depth_tol):
    """``(rows [k], uv [k, 2])`` of the points the view sees."""
    n = points.shape[0]
    lo_u, hi_u = max(0.0, border), min(W, W - border)
    lo_v, hi_v = max(0.0, border), min(H, H - border)
    rows = np.empty(n, np.int64)
    uv = np.empty((n, 2))
    k = 0
    for i in range(n):  # branch-free: every point is written at k, which moves on when the point is inside
        x, y, z = points[i, 0], points[i, 1], points[i, 2]
        cx = m[0, 0] * x + m[0, 1] * y + m[0, 2] * z + m[0, 3]
        cy = m[1, 0] * x + m[1, 1] * y + m[1, 2] * z + m[1, 3]
        d = m[2, 0] * x + m[2, 1] * y + m[2, 2] * z + m[2, 3]
        front = d > EPS
        q = d if front else 1.0
        u = cx / q
        v = cy / q
        rows[k] = i
        uv[k, 0] = u
        uv[k, 1] = v
        k += front & (u >= lo_u) & (u < hi_u) & (v >= lo_v) & (v < hi_v)
    dh, dw = depth.shape
    if dh > 0:
        kept = 0
        for j in range(k):
            i = rows[j]
            x, y, z = points[i, 0], points[i, 1], points[i, 2]
            d = m[2, 0] * x + m[2, 1] * y + m[2, 2] * z + m[2, 3]
            iu = min(max(np.floor(uv[j, 0] / depth_stride), 0.0), dw - 1.0)
            iv = min(max(np.floor(uv[j, 1] / depth_stride), 0.0), dh - 1.0)
            ref = depth[int(iv), int(iu)]
            rows[kept] = i
            uv[kept, 0] = uv[j, 0]
            uv[kept, 1] = uv[j, 1]
            kept += (ref > 0) & (abs(ref - d) <= depth_tol * ref)
        k = kept
    return rows[:k], uv[:k]


@numba.njit(cache=True)
def _view_pairs(points, m, H, W, h, w, border, depth, depth_stride, depth_tol, bilinear):
    """``index [T, k]`` int64, ``weight [T, k]`` float64 (``[0, k]`` for nearest) and output ``rows [k]`` of
    the visible points, in the order of ``index[0]`` (a counting sort over the ``h * w`` cells)."""
    rows, uv = _visible(points, m, H, W, border, depth, depth_stride, depth_tol)
    k = rows.shape[0]
    sx, sy = w / W, h / H
    taps = 4 if bilinear else 1
    index = np.empty((taps, k), np.int64)
    weight = np.empty((taps if bilinear else 0, k))
    for j in range(k):
        u, v = uv[j, 0], uv[j, 1]
        if bilinear:
            x, y = u * sx - 0.5, v * sy - 0.5
            x0, y0 = np.floor(x), np.floor(y)
            fx, fy = x - x0, y - y0
            xa, xb = int(min(max(x0, 0.0), w - 1.0)), int(min(max(x0 + 1, 0.0), w - 1.0))
            ya, yb = int(min(max(y0, 0.0), h - 1.0)), int(min(max(y0 + 1, 0.0), h - 1.0))
            index[0, j], index[1, j] = ya * w + xa, ya * w + xb
            index[2, j], index[3, j] = yb * w + xa, yb * w + xb
            weight[0, j], weight[1, j] = (1 - fx) * (1 - fy), fx * (1 - fy)
            weight[2, j], weight[3, j] = (1 - fx) * fy, fx * fy
        else:
            ix = int(min(max(np.floor(u * sx), 0.0), w - 1.0))
            iy = int(min(max(np.floor(v * sy), 0.0), h - 1.0))
            index[0, j] = iy * w + ix
    start = np.zeros(h * w + 1, np.int64)
    for j in range(k):
        start[index[0, j] + 1] += 1
    for c in range(h * w):
        start[c + 1] += start[c]
    order = np.empty(k, np.int64)
    for j in range(k):
        c = index[0, j]
        order[start[c]] = j
        start[c] += 1
    return index[:, order], weight[:, order], rows[order]
