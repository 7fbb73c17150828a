"""Voxelization of (ragged batches of) point clouds: dynamic (every point kept) or hard (capped, padded).

Voxel coordinates are integer ``(x, y, z)`` indices; voxel ``(i, j, k)`` of cloud b covers
``origin[b] + [i, j, k] * voxel_size`` plus one voxel size along each axis. Output voxels are ordered by
``(batch, z, y, x)`` (row-major in spconv's ``(b, z, y, x)`` index order), so the same input always gives
the same output.
"""
from typing import NamedTuple, Optional, Sequence, Union

import numba
import numpy as np
import torch

from pc_kd.ops.scatter import scatter_reduce_points


class Voxels(NamedTuple):
    """Result of :func:`voxelize`.

    coords: ``[M, 3]`` int32 ``(x, y, z)`` voxel indices.
    batch: ``[M]`` int64 cloud of each voxel.
    point2voxel: ``[N]`` int64 voxel row of each input point, ``-1`` for points dropped (outside
        ``point_range``, beyond ``max_points_per_voxel`` or in voxels beyond ``max_voxels``).
    num_points: ``[M]`` int64 points assigned to each voxel (at most ``max_points_per_voxel`` in hard mode).
    spatial_shape: ``(X, Y, Z)`` grid size covering every cloud.
    origin: ``[B, 3]`` xyz (metres) of the minimum corner of voxel (0, 0, 0), per cloud.
    batch_size: B.
    voxels: hard mode only: ``[M, max_points_per_voxel, F]`` point rows per voxel (input order), zero padded.
    """

    coords: torch.Tensor
    batch: torch.Tensor
    point2voxel: torch.Tensor
    num_points: torch.Tensor
    spatial_shape: tuple
    origin: torch.Tensor
    batch_size: int
    voxels: Optional[torch.Tensor] = None

    def spconv_indices(self) -> torch.Tensor:
        """``[M, 4]`` int32 ``(batch, z, y, x)`` for ``SparseConvTensor`` with spatial shape
        ``spconv_shape``."""
        return torch.cat([self.batch[:, None].int(), self.coords.flip(1).int()], 1)

    @property
    def spconv_shape(self) -> list:
        """``[Z, Y, X]``."""
        return list(self.spatial_shape[::-1])


def _check(points, voxel_size, point_range, mode, max_points_per_voxel, max_voxels):
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"voxelize: points must be [N, 3 + F], got {tuple(points.shape)}")
    if points.shape[0] == 0:
        raise ValueError("voxelize: empty point cloud")
    size = torch.as_tensor(voxel_size, dtype=torch.float64).flatten()
    if size.numel() not in (1, 3) or (size <= 0).any():
        raise ValueError(f"voxelize: voxel_size must be positive, one value or (dx, dy, dz); got {voxel_size}")
    if point_range is not None:
        pr = torch.as_tensor(point_range, dtype=torch.float64).flatten()
        if pr.numel() != 6 or (pr[3:] <= pr[:3]).any():
            raise ValueError(f"voxelize: point_range must be (x_min, y_min, z_min, x_max, y_max, z_max) with "
                             f"max > min, got {point_range}")
    if mode not in ("dynamic", "hard"):
        raise ValueError(f"voxelize: mode must be 'dynamic' or 'hard', got {mode!r}")
    if mode == "hard" and (max_points_per_voxel is None or max_points_per_voxel < 1):
        raise ValueError("voxelize: hard mode needs max_points_per_voxel >= 1")
    if max_voxels is not None and max_voxels < 1:
        raise ValueError(f"voxelize: max_voxels must be >= 1, got {max_voxels}")


def _refuse_non_finite(bad: int) -> None:
    if bad:
        raise ValueError(f"voxelize: {bad} points have NaN or inf coordinates; drop them first")


def voxelize(points: torch.Tensor, voxel_size: Union[float, Sequence[float]],
             point_range: Optional[Sequence[float]] = None, *, mode: str = "dynamic",
             max_points_per_voxel: Optional[int] = None, max_voxels: Optional[int] = None,
             deterministic: bool = True, batch_index: Optional[torch.Tensor] = None,
             batch_size: Optional[int] = None, backend: str = "auto") -> Voxels:
    """Assign points to voxels.

    Args:
        points: ``[N, 3 + F]``, xyz in metres first.
        voxel_size: edge length(s) in metres, one value or ``(dx, dy, dz)``.
        point_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)``; the grid starts at the minimum corner and
            has ``round((max - min) / voxel_size)`` voxels per axis; points whose voxel falls outside are
            dropped (spconv's rule, so a range that is not a whole number of voxels is rounded). ``None``: each cloud's grid starts at its own minimum point.
        mode: ``dynamic`` keeps every point; ``hard`` keeps the first ``max_points_per_voxel`` points of each
            voxel (input order) and returns the padded ``voxels`` tensor, as spconv's ``PointToVoxel`` and
            mmcv's hard voxelization do.
        max_voxels: keep only the first voxels reached in input order (per call), dropping the rest.
        deterministic: use stable sorts, so that which points a hard voxel keeps, and their order, never
            depend on the sort implementation (unstable GPU sorts are a little faster).
        batch_index: ``[N]`` cloud of each point, for a ragged batch (default: one cloud).
        backend: ``auto``: on CPU (points without gradient) numba passes group the points, through a dense cell
            table when the grid has at most 8 cells per point, else through a hash table; elsewhere sorts.
            ``torch``: the sorting path on any device (what GPUs take). Both give the same tensors.
    """
    _check(points, voxel_size, point_range, mode, max_points_per_voxel, max_voxels)
    if backend not in ("auto", "torch"):
        raise ValueError(f"voxelize: backend must be 'auto' or 'torch', got {backend!r}")
    device = points.device
    n = points.shape[0]
    size = torch.as_tensor(voxel_size, dtype=torch.float64, device=device).flatten().expand(3).contiguous()
    if batch_index is not None and batch_index.shape != (n,):
        raise ValueError(f"voxelize: batch_index must be [N] = [{n}], got {tuple(batch_index.shape)}")
    if batch_size is None:
        batch_size = 1 if batch_index is None else int(batch_index.max()) + 1
    cpu = backend == "auto" and _numba_points(points)
    grouping = None  # (keys, occupancy table or None) when numba passes group the points on CPU
    if point_range is not None:
        pr = torch.as_tensor(point_range, dtype=torch.float64, device=device).flatten()
        origin = pr[:3].expand(batch_size, 3).clone()
        shape = torch.round((pr[3:] - pr[:3]) / size).long()
        num_keys = batch_size * int(shape.prod())
        if cpu:
            table = np.full(num_keys, -1, np.int32) if _use_dense(points, num_keys) else np.empty(0, np.int32)
            batch_np = np.empty(0, np.int64) if batch_index is None else batch_index.numpy()  # empty: cloud 0
            key, bad = _dense_keys(points.numpy(), batch_np, pr[:3].numpy(), size.numpy(), shape.numpy(), table)
            _refuse_non_finite(bad)
            grouping = (key, table if len(table) else None)
    if grouping is None:
        if batch_index is None:
            batch_index = torch.zeros(n, dtype=torch.long, device=device)
        _refuse_non_finite(int((~torch.isfinite(points[:, :3]).all(1)).sum()))
        xyz = points[:, :3].double()
        if point_range is not None:
            grid = torch.floor((xyz - pr[:3]) / size).long()
            keep = ((grid >= 0) & (grid < shape)).all(1)
        else:
            origin = torch.full((batch_size, 3), float("inf"), dtype=torch.float64, device=device)
            origin.scatter_reduce_(0, batch_index[:, None].expand(-1, 3), xyz, reduce="amin")
            grid = torch.floor((xyz - origin[batch_index]) / size).long()
            shape = grid.max(0).values + 1
            keep = torch.ones(n, dtype=torch.bool, device=device)
        # key in (batch, z, y, x) row-major order
        key = ((batch_index * shape[2] + grid[:, 2]) * shape[1] + grid[:, 1]) * shape[0] + grid[:, 0]
        key = torch.where(keep, key, torch.full_like(key, -1))
        num_keys = batch_size * int(shape.prod())
        if cpu:  # a grid spanned by the points themselves
            key, table = key.numpy(), None
            if _use_dense(points, num_keys):
                table = np.full(num_keys, -1, np.int32)
                table[key[key >= 0]] = 0
            grouping = (key, table)
    if grouping is not None:
        key, table = grouping
        if table is None:
            point2voxel, unique = _hash_group(key, n if max_voxels is None else max_voxels)
        else:
            if max_voxels is not None:
                _dense_cap(key, table, max_voxels)
            point2voxel, unique = _dense_group(key, table)
        point2voxel, unique = torch.from_numpy(point2voxel), torch.from_numpy(unique)
    else:
        point2voxel, unique = _group(key, keep, max_voxels, deterministic)
    m = len(unique)
    x = unique % shape[0]
    y = (unique // shape[0]) % shape[1]
    z = (unique // (shape[0] * shape[1])) % shape[2]
    batch = unique // (shape[0] * shape[1] * shape[2])
    coords = torch.stack([x, y, z], 1).int()
    voxels, num_points = None, None
    if mode == "hard":
        if grouping is not None:  # caps point2voxel in place and counts the kept points
            # numpy's allocation (transparent huge pages on Linux for large arrays) is zeroed 3x faster than
            # torch.zeros' here, and the fill's scattered writes then miss the TLB less
            buffer = np.empty((m, max_points_per_voxel, points.shape[1]), dtype=points.numpy().dtype)
            buffer.fill(0)
            voxels = torch.from_numpy(buffer)
            num_points = torch.from_numpy(_dense_fill(point2voxel.numpy(), m, max_points_per_voxel, points.numpy(),
                                                      buffer))
        else:
            voxels = points.new_zeros(m, max_points_per_voxel, points.shape[1])
            point2voxel, slot = _cap_points(point2voxel, m, max_points_per_voxel, deterministic)
            kept = point2voxel >= 0
            voxels[point2voxel[kept], slot[kept]] = points[kept]
    if num_points is None:
        num_points = torch.bincount(point2voxel[point2voxel >= 0], minlength=m)
    return Voxels(coords, batch, point2voxel, num_points, tuple(int(s) for s in shape), origin.to(points.dtype),
                  batch_size, voxels)


def _numba_points(points) -> bool:
    """CPU, float32/64 points without gradient: what the numba grouping passes take."""
    return (points.device.type == "cpu" and not points.requires_grad
            and points.dtype in (torch.float32, torch.float64))


def _use_dense(points, num_keys) -> bool:
    """A grid of at most 8 cells per point (1M points of a room at 5 cm: 2.4M cells): a dense cell table groups
    the points; larger grids take a hash table."""
    return num_keys <= max(8 * len(points), 1 << 16)


@numba.njit(cache=True)
def _dense_keys(points, batch_index, low, size, shape, table):
    """The sorting path's keys in one pass: ``floor((xyz - low) / size)`` in float64, -1 outside the grid, else
    ``((b Z + z) Y + y) X + x`` (b = ``batch_index[i]``, or 0 when ``batch_index`` is empty), each key's cell of
    ``table`` set to 0 (occupied; an empty ``table``: none); and the number of points with a NaN / inf
    coordinate."""
    n = points.shape[0]
    key = np.empty(n, np.int64)
    bad = 0
    marking = table.shape[0] > 0
    batched = batch_index.shape[0] > 0
    for i in range(n):
        gx = np.floor((np.float64(points[i, 0]) - low[0]) / size[0])
        gy = np.floor((np.float64(points[i, 1]) - low[1]) / size[1])
        gz = np.floor((np.float64(points[i, 2]) - low[2]) / size[2])
        if not (np.isfinite(gx) and np.isfinite(gy) and np.isfinite(gz)):
            bad += 1
            key[i] = -1
        elif gx < 0 or gy < 0 or gz < 0 or gx >= shape[0] or gy >= shape[1] or gz >= shape[2]:
            key[i] = -1
        else:
            b = batch_index[i] if batched else 0
            key[i] = ((b * shape[2] + np.int64(gz)) * shape[1] + np.int64(gy)) * shape[0] + np.int64(gx)
            if marking:
                table[key[i]] = 0
    return key, bad


@numba.njit(cache=True)
def _dense_group(key, table):
    """Voxel row of each point (rows in increasing key order, -1 for key -1) and the key of each row; ``table``
    (one entry per key, 0 where occupied, else -1) becomes the row of each occupied key."""
    n, num_keys = key.shape[0], table.shape[0]
    m = 0
    for c in range(num_keys):
        if table[c] == 0:
            table[c] = m
            m += 1
    unique = np.empty(m, np.int64)
    point2voxel = np.full(n, -1, np.int64)
    for c in range(num_keys):
        if table[c] >= 0:
            unique[table[c]] = c
    for i in range(n):
        if key[i] >= 0:
            point2voxel[i] = table[key[i]]
    return point2voxel, unique


@numba.njit(cache=True)
def _dense_cap(key, table, max_voxels):
    """Keep the first ``max_voxels`` occupied cells in input order (spconv's ``max_num_voxels`` rule): the later
    ones' entries of ``table`` (0 = occupied) become -1, so their points are dropped."""
    seen = 0
    for i in range(key.shape[0]):
        k = key[i]
        if k >= 0 and table[k] == 0:
            if seen < max_voxels:
                table[k] = 1
                seen += 1
            else:
                table[k] = -1
    for c in range(table.shape[0]):
        if table[c] == 1:
            table[c] = 0


@numba.njit(cache=True)
def _hash_slot(k, bits):
    """Fibonacci hashing of a non-negative int64 key into ``bits`` bits."""
    return np.int64((np.uint64(k) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - bits))


@numba.njit(cache=True)
def _hash_grow(slots, rows, bits):
    """The entries of an open-addressing table re-inserted into one of ``2^bits`` slots."""
    new_slots = np.full(1 << bits, -1, np.int64)
    new_rows = np.empty(1 << bits, np.int64)
    mask = (1 << bits) - 1
    for j in range(slots.shape[0]):
        k = slots[j]
        if k >= 0:
            h = _hash_slot(k, bits)
            while new_slots[h] != -1:
                h = (h + 1) & mask
            new_slots[h] = k
            new_rows[h] = rows[j]
    return new_slots, new_rows, bits


@numba.njit(cache=True)
def _hash_insert(key, start, slots, rows, bits, first_keys, row, state, max_voxels):
    """Insert ``key[start:]`` into the table until it is half full; returns where it stopped. ``state``: (voxels
    made, slots used, last key, its row). The table's arrays stay fixed in here, so the loop compiles tight."""
    mask = (1 << bits) - 1
    m, used, last_key, last_row = state[0], state[1], state[2], state[3]
    i = start
    while i < key.shape[0]:
        k = key[i]
        if k < 0:
            i += 1
            continue
        if k == last_key:  # consecutive points (a LiDAR scan line, a sorted cloud) often share a voxel
            row[i] = last_row
            i += 1
            continue
        if 2 * (used + 1) > (1 << bits):
            break
        h = _hash_slot(k, bits)
        while True:
            s = slots[h]
            if s == k:
                break
            if s == -1:
                slots[h] = k
                used += 1
                if m < max_voxels:
                    rows[h] = m
                    first_keys[m] = k
                    m += 1
                else:
                    rows[h] = -1
                break
            h = (h + 1) & mask
        last_row = rows[h]
        row[i] = last_row
        last_key = k
        i += 1
    state[0], state[1], state[2], state[3] = m, used, last_key, last_row
    return i


@numba.njit(cache=True)
def _hash_rows(key, max_voxels):
    """The first ``max_voxels`` distinct keys (not -1) in input order, through an open-addressing hash table that
    starts small (cache-resident) and doubles when half full: ``(row [N]`` (the index of each point's key in that
    order, -1 for key -1 and later keys), ``keys [M])``."""
    n = key.shape[0]
    bits = 12
    slots = np.full(1 << bits, -1, np.int64)
    rows = np.empty(1 << bits, np.int64)
    first_keys = np.empty(min(n, max_voxels), np.int64)
    row = np.full(n, -1, np.int64)
    state = np.array([0, 0, -1, -1], np.int64)
    i = _hash_insert(key, 0, slots, rows, bits, first_keys, row, state, max_voxels)
    while i < n:
        slots, rows, bits = _hash_grow(slots, rows, bits + 1)
        i = _hash_insert(key, i, slots, rows, bits, first_keys, row, state, max_voxels)
    return row, first_keys[:state[0]]


@numba.njit(cache=True)
def _renumber(row, order):
    """``point2voxel [N]``: each point's row renumbered by ``order`` (row ``order[j]`` becomes j), -1 kept."""
    rank = np.empty(order.shape[0], np.int64)
    for j in range(order.shape[0]):
        rank[order[j]] = j
    point2voxel = np.full(row.shape[0], -1, np.int64)
    for i in range(row.shape[0]):
        if row[i] >= 0:
            point2voxel[i] = rank[row[i]]
    return point2voxel


def _hash_group(key: np.ndarray, max_voxels: int):
    """:func:`_dense_group` for grids too large for a dense table: the first ``max_voxels`` distinct keys in input
    order become voxels, numbered in increasing key order; the points of later keys and of key -1 get -1. Returns
    ``(point2voxel [N], unique keys [M])``."""
    row, first_keys = _hash_rows(key, max_voxels)
    order = np.argsort(first_keys)  # numpy's sort: several times faster than numba's here
    return _renumber(row, order), first_keys[order]


@numba.njit(cache=True)
def _dense_fill(point2voxel, num_voxels, max_points, points, voxels):
    """Copy the first ``max_points`` points of each voxel (input order) into ``voxels [M, max_points, F]``; the
    others get voxel -1 (in place); returns the points per voxel."""
    counts = np.zeros(num_voxels, np.int64)
    for i in range(point2voxel.shape[0]):
        v = point2voxel[i]
        if v < 0:
            continue
        slot = counts[v]
        if slot >= max_points:
            point2voxel[i] = -1
            continue
        for f in range(points.shape[1]):  # element by element: 2-3x faster than a slice assignment in numba
            voxels[v, slot, f] = points[i, f]
        counts[v] = slot + 1
    return counts


def _group(key, keep, max_voxels, deterministic):
    """Voxel row per point (sorted key order) and the kept unique keys; with max_voxels, only the voxels whose
    first point comes first in input order."""
    unique, inverse = torch.unique(key[keep], sorted=True, return_inverse=True)
    point2voxel = torch.full_like(key, -1)
    point2voxel[keep] = inverse
    if max_voxels is not None and len(unique) > max_voxels:
        first = torch.full((len(unique),), key.numel(), dtype=torch.long, device=key.device)
        first.scatter_reduce_(0, inverse, torch.nonzero(keep).squeeze(1), reduce="amin")
        chosen = torch.sort(torch.argsort(first, stable=deterministic)[:max_voxels]).values
        remap = torch.full((len(unique),), -1, dtype=torch.long, device=key.device)
        remap[chosen] = torch.arange(len(chosen), device=key.device)
        point2voxel = torch.where(point2voxel >= 0, remap[point2voxel.clamp(min=0)], point2voxel)
        unique = unique[chosen]
    return point2voxel, unique


def _cap_points(point2voxel, num_voxels, max_points, deterministic):
    """Keep the first ``max_points`` points of each voxel in input order; return (point2voxel, slot)."""
    n = point2voxel.numel()
    valid = point2voxel >= 0
    order = torch.argsort(torch.where(valid, point2voxel, torch.full_like(point2voxel, num_voxels)),
                          stable=deterministic)
    sorted_voxel = point2voxel[order]
    counts = torch.bincount(sorted_voxel[sorted_voxel >= 0], minlength=num_voxels)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n, device=point2voxel.device) - starts[sorted_voxel.clamp(min=0)]
    slot = torch.empty_like(point2voxel)
    slot[order] = rank
    capped = valid & (slot < max_points)
    return torch.where(capped, point2voxel, torch.full_like(point2voxel, -1)), slot


def voxel_reduce(point_feats: torch.Tensor, voxels: Voxels, reduce: str = "mean") -> torch.Tensor:
    """``[M, C]`` reduction (mean / max / min / sum) of ``point_feats [N, C]`` over each voxel's points."""
    return scatter_reduce_points(point_feats, voxels.point2voxel, len(voxels.coords), reduce)


def voxel_to_point(voxel_feats: torch.Tensor, point2voxel: torch.Tensor) -> torch.Tensor:
    """``[N, C]`` features of each point's voxel (zeros for dropped points, ``point2voxel == -1``)."""
    out = voxel_feats[point2voxel.clamp(min=0)]
    return out * (point2voxel >= 0)[:, None].to(out.dtype)
