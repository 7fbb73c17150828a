"""numba kernels for super-voxels: priority flooding over a voxel graph and region labelling (connected
components, region growing). Arrays only (CSR adjacency ``indptr [M + 1]``, ``indices [E]``)."""
import heapq

import numba
import numpy as np


@numba.njit(cache=True)
def _feature_distance(xyz, rgb, nrm, u, cxyz, crgb, cnrm, w_s, w_n, w_c):
    ds = ((xyz[u, 0] - cxyz[0]) ** 2 + (xyz[u, 1] - cxyz[1]) ** 2 + (xyz[u, 2] - cxyz[2]) ** 2)
    dc = ((rgb[u, 0] - crgb[0]) ** 2 + (rgb[u, 1] - crgb[1]) ** 2 + (rgb[u, 2] - crgb[2]) ** 2)
    dn = 1.0 - abs(nrm[u, 0] * cnrm[0] + nrm[u, 1] * cnrm[1] + nrm[u, 2] * cnrm[2])
    return np.sqrt(w_s * ds + w_c * dc + w_n * dn * dn)


@numba.njit(cache=True)
def flood(indptr, indices, xyz, rgb, nrm, seeds, cxyz, crgb, cnrm, w_s, w_n, w_c):
    """Flow-constrained clustering: grow every seed through the adjacency graph, always claiming next the
    unclaimed voxel nearest (in feature distance) to the centre of a cluster it touches.

    ``seeds [S]`` voxel ids with centre features ``cxyz, crgb, cnrm [S, 3]``; ``w_s`` already holds
    ``1 / (3 R^2)`` x the spatial weight. Returns ``label [M]`` (-1 where no seed can flow).
    """
    m = xyz.shape[0]
    label = np.full(m, -1, np.int64)
    heap = [(0.0, np.int64(0), np.int64(0))]
    heap.pop()
    for s in range(seeds.shape[0]):
        heapq.heappush(heap, (0.0, np.int64(seeds[s]), np.int64(s)))
    while len(heap) > 0:
        d, u, s = heapq.heappop(heap)
        if label[u] >= 0:
            continue
        label[u] = s
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            if label[v] < 0:
                dv = _feature_distance(xyz, rgb, nrm, v, cxyz[s], crgb[s], cnrm[s], w_s, w_n, w_c)
                heapq.heappush(heap, (dv, np.int64(v), s))
    return label


@numba.njit(cache=True)
def label_regions(indptr, indices, edge_ok, spread, allowed, order):
    """Regions grown through the graph: seeds taken in ``order`` (skipping labelled or not ``allowed``
    voxels); a region crosses edge e when ``edge_ok[e]`` and its far end is ``allowed``; only voxels with
    ``spread`` (and the seed) pass the growth on. Returns ``region [M]`` (-1 where not allowed) and the count.
    """
    m = allowed.shape[0]
    region = np.full(m, -1, np.int64)
    stack = np.empty(m, np.int64)
    count = 0
    for i in range(order.shape[0]):
        seed = order[i]
        if not allowed[seed] or region[seed] >= 0:
            continue
        region[seed] = count
        top = 0
        stack[top] = seed
        while top >= 0:
            u = stack[top]
            top -= 1
            for e in range(indptr[u], indptr[u + 1]):
                v = indices[e]
                if region[v] >= 0 or not edge_ok[e] or not allowed[v]:
                    continue
                region[v] = count
                if spread[v]:
                    top += 1
                    stack[top] = v
        count += 1
    return region, count


def components(indptr, indices, mask):
    """Connected components of the voxels where ``mask`` is True: ``comp [M]`` (-1 elsewhere), count."""
    m = mask.shape[0]
    return label_regions(indptr, indices, np.ones(len(indices), np.bool_), mask, mask, np.arange(m))


def grow_regions(indptr, indices, nrm, curvature, cos_angle, max_curvature):
    """PCL-style region growing: from the flattest unassigned voxel, absorb neighbours whose normal is within
    the angle of their parent's; only voxels below ``max_curvature`` pass the growth on. ``region [M]``."""
    rows = np.repeat(np.arange(len(nrm)), np.diff(indptr))
    edge_ok = np.abs(np.einsum("ij,ij->i", nrm[rows], nrm[indices])) >= cos_angle
    region, _ = label_regions(indptr, indices, edge_ok, curvature < max_curvature, np.ones(len(nrm), np.bool_),
                              np.argsort(curvature, kind="stable"))
    return region
