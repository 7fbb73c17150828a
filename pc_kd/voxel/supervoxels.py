"""VCCS-style super-voxels (Papon et al., CVPR 2013) on voxelized point clouds, plus region-growing merge.

Steps: voxelize at ``voxel_size``; per voxel the centroid, mean colour and a normal; 26-neighbour voxel
adjacency (plus 8 nearest centroids, for sparse clouds); one seed per occupied cell of a ``seed_size`` grid; flow-constrained growth from the seeds through
the adjacency graph by the weighted distance to the seed voxel
``D = sqrt(w_s |x - x_s|^2 / (3 R^2) + w_c |rgb - rgb_s|^2 + w_n (1 - |n . n_s|)^2)`` (R = seed_size, colours
in 0..1), repeated with every seed moved to the voxel nearest its cluster's centroid; voxels no seed can reach form their own segments. Optionally
large planar regions from region growing on normals/curvature replace the super-voxels they cover (PointDC's
S3DIS recipe).
"""
import logging
from typing import Optional, Sequence

import numpy as np
import torch
from mmengine.logging import print_log

from .graph import components, flood, grow_regions
from .voxelize import voxelize

DEFAULT_REGION_GROWING = dict(k=15, angle_deg=10.0, max_curvature=0.05, min_points=500)
_OFFSETS = np.array([(dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)
                     if (dx, dy, dz) != (0, 0, 0)], dtype=np.int64)


def estimate_normals(xyz: np.ndarray, k: int = 16):
    """Unit normals ``[M, 3]`` and curvature ``[M]`` (smallest eigenvalue / trace) from PCA over the ``k``
    nearest neighbours (scipy cKDTree)."""
    from scipy.spatial import cKDTree

    k = int(min(k, len(xyz)))
    _, nn = cKDTree(xyz).query(xyz, k=k, workers=-1)
    nbrs = xyz[nn.reshape(len(xyz), k)]
    centred = nbrs - nbrs.mean(1, keepdims=True)
    cov = np.einsum("nki,nkj->nij", centred, centred) / max(k, 1)
    evals, evecs = np.linalg.eigh(cov)
    curvature = evals[:, 0] / np.maximum(evals.sum(1), 1e-12)
    return evecs[:, :, 0], curvature


def voxel_adjacency(coords: np.ndarray, xyz: np.ndarray = None, k: int = 0, max_dist: float = np.inf):
    """CSR (``indptr [M + 1]``, ``indices``) of the 26-neighbourhood of integer voxel ``coords [M, 3]``, plus
    (when ``k > 0``) each voxel centroid's ``k`` nearest centroids within ``max_dist``, both ways: in a cloud
    sampled more sparsely than the voxel size the 26-neighbourhood alone falls apart into islands."""
    shape = coords.max(0) + 3
    keys = ((coords[:, 2] + 1) * shape[1] + coords[:, 1] + 1) * shape[0] + coords[:, 0] + 1
    order = np.argsort(keys)
    sorted_keys = keys[order]
    nbr = coords[:, None, :] + _OFFSETS[None]
    nkeys = ((nbr[..., 2] + 1) * shape[1] + nbr[..., 1] + 1) * shape[0] + nbr[..., 0] + 1
    pos = np.clip(np.searchsorted(sorted_keys, nkeys), 0, len(keys) - 1)
    found = sorted_keys[pos] == nkeys
    rows = np.repeat(np.arange(len(coords)), found.sum(1))
    cols = order[pos[found]]
    if k > 0 and len(coords) > 1:
        from scipy.spatial import cKDTree

        dist, nn = cKDTree(xyz).query(xyz, k=min(k + 1, len(xyz)), distance_upper_bound=max_dist, workers=-1)
        ok = np.isfinite(dist) & (nn != np.arange(len(xyz))[:, None]) & (nn < len(xyz))
        src, dst = np.nonzero(ok)[0], nn[ok]
        # unique (row, col) pairs in (row, col) order through one int64 key: np.unique(axis=0) sorts structured
        # rows, 5x slower (9 of 17 s of a 2.5M-point scene)
        m = len(coords)
        edges = np.unique(np.concatenate([rows * m + cols, src * m + dst, dst * m + src]))
        rows, cols = np.divmod(edges, m)
    indptr = np.zeros(len(coords) + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=len(coords)), out=indptr[1:])
    return indptr, cols.astype(np.int64)


def _normalize_colors(colors: np.ndarray, where: str) -> np.ndarray:
    if colors.min() < 0 or colors.max() > 255:
        raise ValueError(f"{where}: colours must be in 0..1 or 0..255, got range [{colors.min()}, {colors.max()}]")
    if colors.max() > 1.0:
        print_log(f"{where}: values up to {colors.max():g} read as 0..255 colours (divided by 255)", "current",
                  logging.INFO)
        return colors / 255.0
    return colors


def _label_mean(label, values, count):
    """``[count, C]`` mean of ``values [N, C]`` per ``label [N]`` (0 rows for empty labels)."""
    n = np.bincount(label, minlength=count).astype(np.float64)[:, None]
    return np.stack([np.bincount(label, values[:, i], count) for i in range(values.shape[1])], 1) / np.maximum(n, 1)


def _central_members(label, count, xyz):
    """For each of ``count`` groups, the index of its member nearest to the group's centroid."""
    return _nearest_member(label, count, xyz, _label_mean(label, xyz, count))


def _nearest_member(label, count, xyz, cxyz):
    """For each cluster, its voxel nearest to the cluster centre."""
    d = np.linalg.norm(xyz - cxyz[label], axis=1)
    order = np.lexsort((d, label))
    first = np.ones(len(order), bool)
    first[1:] = label[order][1:] != label[order][:-1]
    seeds = np.full(count, -1, np.int64)
    seeds[label[order][first]] = order[first]
    return seeds


def supervoxels(points, colors=None, normals=None, *, voxel_size: float = 0.05, seed_size: float = 0.45,
                weights: Sequence[float] = (0.4, 1.0, 0.2), region_growing: Optional[dict] = None,
                iterations: int = 3, min_seed_voxels: int = 3) -> np.ndarray:
    """Super-voxel label of every point.

    Args:
        points: ``[N, 3]`` xyz in metres (numpy or torch).
        colors: ``[N, 3]`` rgb in 0..1 or 0..255 (detected), or None.
        normals: ``[N, 3]`` unit normals, or None (estimated by PCA on the voxel centroids).
        voxel_size: voxel edge (metres), the resolution of the segment boundaries.
        seed_size: seed grid spacing R (metres), about the size of a super-voxel.
        weights: ``(spatial, normal, colour)`` weights of the distance.
        region_growing: None, or a dict with ``k``, ``angle_deg``, ``max_curvature``, ``min_points`` (see
            ``DEFAULT_REGION_GROWING``): planar regions of at least ``min_points`` points replace the
            super-voxels inside them.
        iterations: re-centring rounds of the flow-constrained growth.

    Returns:
        ``labels [N]`` int64 in ``0..K-1``; every point is labelled.
    """
    pts = np.asarray(points.detach().cpu() if torch.is_tensor(points) else points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise ValueError(f"supervoxels: points must be [N, 3], got {pts.shape}")
    if len(pts) == 0:
        raise ValueError("supervoxels: empty point cloud")
    if not np.isfinite(pts).all():
        raise ValueError(f"supervoxels: {int((~np.isfinite(pts).all(1)).sum())} points have NaN or inf "
                         f"coordinates; drop them first (labels must stay aligned with the input)")
    if voxel_size <= 0 or seed_size <= 0:
        raise ValueError(f"supervoxels: voxel_size and seed_size must be positive, got {voxel_size}, {seed_size}")
    for name, arr in (("colors", colors), ("normals", normals)):
        if arr is not None and np.shape(arr) != pts.shape:
            raise ValueError(f"supervoxels: {name} must be [N, 3] = {list(pts.shape)}, got {list(np.shape(arr))}")
    vox = voxelize(torch.from_numpy(pts), voxel_size)
    p2v = vox.point2voxel.numpy()
    m = len(vox.coords)
    count = np.bincount(p2v, minlength=m)
    xyz = _label_mean(p2v, pts, m)
    rgb = np.zeros_like(xyz) if colors is None else _label_mean(p2v, _normalize_colors(
        np.asarray(colors, dtype=np.float64), "supervoxels colors"), m)
    if normals is None:
        nrm, curvature = estimate_normals(xyz, k=16)
    else:
        nrm = _label_mean(p2v, np.asarray(normals, dtype=np.float64), m)
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
        curvature = np.zeros(m)
    indptr, indices = voxel_adjacency(vox.coords.numpy().astype(np.int64), xyz, k=8, max_dist=seed_size / 2)
    w_s, w_n, w_c = weights[0] / (3.0 * seed_size ** 2), weights[1], weights[2]
    if colors is None:
        w_c = 0.0

    # seeds: per occupied seed cell, the voxel nearest to the cell's voxel centroid
    cell = np.floor((xyz - xyz.min(0)) / seed_size).astype(np.int64)
    _, cell_id = np.unique(cell, axis=0, return_inverse=True)
    cell_id = cell_id.reshape(-1)
    big = np.bincount(cell_id) >= min_seed_voxels
    keep = big[cell_id]
    sub_label = np.unique(cell_id[keep], return_inverse=True)[1].reshape(-1)
    sub_count = int(sub_label.max()) + 1 if keep.any() else 0
    seeds = np.zeros(0, np.int64)
    if sub_count:
        seeds = np.flatnonzero(keep)[_central_members(sub_label, sub_count, xyz[keep])]
    label = np.full(m, -1, np.int64)
    for it in range(max(1, iterations) if len(seeds) else 0):
        # grow from the seeds (distances to the seed voxel's own features), then move every seed to the voxel
        # nearest its cluster's centroid; the last round's clusters are the result
        label = flood(indptr, indices, xyz, rgb, nrm, seeds, xyz[seeds], rgb[seeds], nrm[seeds], w_s, w_n, w_c)
        if it == iterations - 1:
            break
        reached = label >= 0
        used, label[reached] = np.unique(label[reached], return_inverse=True)
        seeds = np.flatnonzero(reached)[_central_members(label[reached], len(used), xyz[reached])]
    label = _label_unreached(label, indptr, indices, xyz, min_seed_voxels)
    if region_growing is not None:
        label = _merge_planar_regions(label, indptr, indices, xyz, nrm, curvature, count, region_growing)
    out = np.unique(label, return_inverse=True)[1].reshape(-1)[p2v]
    print_log(f"supervoxels: {len(pts)} points, {m} voxels -> {out.max() + 1} segments", "current", logging.DEBUG)
    return out.astype(np.int64)


def _label_unreached(label, indptr, indices, xyz, min_voxels):
    """Voxels no seed flowed to (pieces cut off from the graph): components of at least ``min_voxels`` become
    segments of their own, smaller ones join the segment of their nearest labelled voxel."""
    unreached = label < 0
    if not unreached.any():
        return label
    comp, count = components(indptr, indices, unreached)
    sizes = np.bincount(comp[unreached], minlength=count)
    big = unreached.copy()
    big[unreached] = sizes[comp[unreached]] >= min_voxels
    base = label.max() + 1
    label[big] = base + np.unique(comp[big], return_inverse=True)[1].reshape(-1)
    small = label < 0
    if small.any() and (~small).any():
        from scipy.spatial import cKDTree

        labelled = np.flatnonzero(~small)
        _, nearest = cKDTree(xyz[labelled]).query(xyz[small], workers=-1)
        label[small] = label[labelled[nearest]]
    elif small.any():
        label[small] = 0
    return label


def _merge_planar_regions(label, indptr, indices, xyz, nrm, curvature, point_count, options):
    opts = dict(DEFAULT_REGION_GROWING)
    opts.update(options)
    unknown = set(opts) - set(DEFAULT_REGION_GROWING)
    if unknown:
        raise ValueError(f"supervoxels: unknown region_growing options {sorted(unknown)}; expected "
                         f"{sorted(DEFAULT_REGION_GROWING)}")
    nrm_k, curv_k = estimate_normals(xyz, k=opts["k"])
    region = grow_regions(indptr, indices, nrm_k, curv_k, np.cos(np.radians(opts["angle_deg"])),
                          opts["max_curvature"])
    size = np.bincount(region, weights=point_count)
    planar = size[region] >= opts["min_points"]
    out = label.copy()
    out[planar] = label.max() + 1 + region[planar]
    return out
