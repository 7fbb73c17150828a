"""Vectorised ray casting against a ground plane and yaw-oriented boxes (driving scenes)."""
from typing import NamedTuple

import numpy as np


class RayHits(NamedTuple):
    """t: ``[R]`` distance along each (unit) ray, inf for a miss; target: ``[R]`` int64, -1 miss, 0 ground,
    k + 1 box k; normal: ``[R, 3]`` unit surface normal at the hit (zeros for a miss)."""

    t: np.ndarray
    target: np.ndarray
    normal: np.ndarray


def raycast(origins: np.ndarray, dirs: np.ndarray, boxes: np.ndarray, ground_z: float = 0.0,
            max_range: float = np.inf) -> RayHits:
    """Nearest hit of rays ``origins + t * dirs`` (``[R, 3]``, dirs unit length) with the plane
    ``z = ground_z`` and the boxes ``[K, 7]`` (x, y, z, l, w, h, yaw; geometric centre)."""
    n = len(origins)
    t_best = np.full(n, np.inf)
    target = np.full(n, -1, dtype=np.int64)
    normal = np.zeros((n, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        t_ground = (ground_z - origins[:, 2]) / dirs[:, 2]
    hit = (dirs[:, 2] < 0) & (t_ground > 0) & (t_ground < max_range)
    t_best[hit], target[hit], normal[hit] = t_ground[hit], 0, (0.0, 0.0, 1.0)
    candidates = _azimuth_candidates(origins, dirs, boxes)
    for k, (x, y, z, l, w, h, yaw) in enumerate(boxes):
        c, s = np.cos(yaw), np.sin(yaw)
        rot_t = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])  # world -> box
        rays = candidates(k)
        if rays is not None and len(rays) == 0:
            continue
        hit_rays = np.arange(n) if rays is None else rays
        o = (origins[hit_rays] - (x, y, z)) @ rot_t.T
        d = dirs[hit_rays] @ rot_t.T
        half = np.array([l, w, h]) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (-half - o) / d, (half - o) / d
        t_near = np.nanmax(np.minimum(t1, t2), axis=1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=1)
        hit = (t_near <= t_far) & (t_near > 0) & (t_near < t_best[hit_rays]) & (t_near < max_range)
        if not hit.any():
            continue
        axis = np.argmax(np.minimum(t1, t2)[hit], axis=1)
        local_n = np.zeros((hit.sum(), 3))
        local_n[np.arange(hit.sum()), axis] = -np.sign(d[hit, axis])
        idx = hit_rays[hit]
        t_best[idx], target[idx], normal[idx] = t_near[hit], k + 1, local_n @ rot_t
    return RayHits(t_best, target, normal)


def _azimuth_candidates(origins: np.ndarray, dirs: np.ndarray, boxes: np.ndarray):
    """When all rays leave one point (a LiDAR, a camera), a function ``k -> ray indices`` whose azimuth lies
    within box k's bounding circle as seen from that point (a superset of the rays that can hit it); else a
    function returning None (test every ray)."""
    if len(origins) == 0 or not (origins == origins[0]).all():
        return lambda k: None
    origin = origins[0]
    az = np.arctan2(dirs[:, 1], dirs[:, 0])
    order = np.argsort(az, kind="stable")
    az_sorted = az[order]

    def rays(k):
        x, y, _, l, w, _, _ = boxes[k]
        dist = np.hypot(x - origin[0], y - origin[1])
        radius = np.hypot(l, w) / 2 + 1e-6
        if dist <= radius:
            return None
        centre, half = np.arctan2(y - origin[1], x - origin[0]), np.arcsin(radius / dist)
        lo, hi = centre - half, centre + half
        spans = [(lo, hi)] if -np.pi <= lo and hi <= np.pi else \
            [(-np.pi, hi - 2 * np.pi if hi > np.pi else hi), (lo + 2 * np.pi if lo < -np.pi else lo, np.pi)]
        parts = [order[np.searchsorted(az_sorted, a, "left"):np.searchsorted(az_sorted, b, "right")]
                 for a, b in spans]
        return np.sort(np.concatenate(parts))

    return rays
