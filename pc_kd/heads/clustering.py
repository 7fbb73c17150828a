"""Clustering of point features for unsupervised segmentation: cosine k-means, pooling over super-points,
per-super-point voting and assignment to cluster centres (the Runner hooks that use them: pc_kd.engine)."""
from typing import Tuple

import torch
import torch.nn.functional as F


def kmeans(x: torch.Tensor, k: int, iters: int = 80, seed: int = 0, cosine: bool = True, restarts: int = 1
           ) -> Tuple[torch.Tensor, torch.Tensor]:
    """k-means (k-means++ seeding) of ``x [M, C]``; with ``cosine`` on L2-normalised rows (spherical).

    With ``restarts > 1`` it runs that many seedings and keeps the best objective (the highest total cosine
    similarity to the assigned centre, or the lowest sum of squared distances), as scikit-learn's ``n_init``.
    Returns ``centroids [k, C]`` and ``assign [M]``. Deterministic for a given ``seed``.
    """
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"kmeans: expected a non-empty [M, C] tensor, got {tuple(x.shape)}")
    if k > x.shape[0]:
        raise ValueError(f"kmeans: k = {k} clusters asked for only {x.shape[0]} items (super-points); lower k or "
                         f"use smaller super-points")
    x = F.normalize(x.float(), dim=1) if cosine else x.float()
    g = torch.Generator(device="cpu").manual_seed(seed)
    best = None
    for _ in range(restarts):
        centroids, assign = _kmeans_once(x, k, iters, cosine, g)
        fit = (x * centroids[assign]).sum() if cosine else -((x - centroids[assign]) ** 2).sum()
        if best is None or fit > best[0]:
            best = (fit, centroids, assign)
    return best[1], best[2]


def _kmeans_once(x: torch.Tensor, k: int, iters: int, cosine: bool, g: torch.Generator):
    centroids = x[torch.randint(len(x), (1,), generator=g)]
    for _ in range(1, k):  # k-means++
        d = torch.cdist(x, centroids).min(1).values ** 2
        probs = (d / d.sum()).cpu() if d.sum() > 0 else torch.full((len(x),), 1.0 / len(x))
        centroids = torch.cat([centroids, x[torch.multinomial(probs, 1, generator=g)]])
    for _ in range(iters):
        assign = (x @ centroids.T).argmax(1) if cosine else torch.cdist(x, centroids).argmin(1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)
        empty = counts == 0
        new = sums / counts.clamp(min=1)[:, None].to(sums.dtype)
        new[empty] = centroids[empty]
        new = F.normalize(new, dim=1) if cosine else new
        if torch.allclose(new, centroids):
            break
        centroids = new
    assign = (x @ centroids.T).argmax(1) if cosine else torch.cdist(x, centroids).argmin(1)
    return centroids, assign


def minibatch_kmeans(x: torch.Tensor, k: int, batch_size: int = 1024, iters: int = 200, seed: int = 0,
                     cosine: bool = True, restarts: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mini-batch k-means (Sculley 2010) of ``x [M, C]``, for a dataset too large for a full pass per step: k-means++
    seeding on a sample, then each step moves every centre towards the mean of the batch items assigned to it
    with the rate ``(items in this batch) / (items it received so far)``. Returns ``centroids [k, C]`` and
    ``assign [M]`` (every item to its nearest centre). With ``cosine``, on L2-normalised rows (spherical). With
    ``restarts > 1``, that many runs from different seedings, the best objective kept (as ``kmeans``)."""
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"minibatch_kmeans: expected a non-empty [M, C] tensor, got {tuple(x.shape)}")
    if k > x.shape[0]:
        raise ValueError(f"minibatch_kmeans: k = {k} clusters asked for only {x.shape[0]} items; lower k")
    x = F.normalize(x.float(), dim=1) if cosine else x.float()
    g = torch.Generator(device="cpu").manual_seed(seed)
    best = None
    for _ in range(restarts):
        centroids, assign = _minibatch_once(x, k, batch_size, iters, cosine, g)
        fit = (x * centroids[assign]).sum() if cosine else -((x - centroids[assign]) ** 2).sum()
        if best is None or fit > best[0]:
            best = (fit, centroids, assign)
    return best[1], best[2]


def _minibatch_once(x: torch.Tensor, k: int, batch_size: int, iters: int, cosine: bool, g: torch.Generator):
    sample = x[torch.randperm(len(x), generator=g)[:max(batch_size, 3 * k)]]
    centroids, _ = _kmeans_once(sample, k, 0, cosine, g)
    seen = torch.zeros(k)

    def nearest(items):
        return (items @ centroids.T).argmax(1) if cosine else torch.cdist(items, centroids).argmin(1)

    for _ in range(iters):
        batch = x[torch.randint(len(x), (min(batch_size, len(x)),), generator=g)]
        assign = nearest(batch)
        counts = torch.bincount(assign, minlength=k).float()
        sums = torch.zeros_like(centroids).index_add_(0, assign, batch)
        seen += counts
        rate = (counts / seen.clamp(min=1))[:, None]
        hit = counts > 0
        centroids = torch.where(hit[:, None], (1 - rate) * centroids + rate * sums / counts.clamp(min=1)[:, None],
                                centroids)
        if cosine:
            centroids = F.normalize(centroids, dim=1)
    return centroids, nearest(x)


def segment_pool(feats: torch.Tensor, segments: torch.Tensor):
    """Mean of ``feats [N, C]`` per segment id (``segments [N]``, -1 ignored): ``pooled [S, C]`` and each
    point's row ``index [N]`` (-1 for ignored points)."""
    keep = segments >= 0
    ids, inverse = torch.unique(segments[keep], return_inverse=True)
    pooled = feats.new_zeros(len(ids), feats.shape[1]).index_add_(0, inverse, feats[keep])
    pooled /= torch.bincount(inverse, minlength=len(ids)).clamp(min=1)[:, None].to(feats.dtype)
    index = torch.full_like(segments, -1)
    index[keep] = inverse
    return pooled, index


def segment_fill(values: torch.Tensor, mask: torch.Tensor, segments: torch.Tensor):
    """Give every point the mean of ``values [N, C]`` over the ``mask``-ed points of its segment.

    Returns ``filled [N, C]`` (zeros where nothing is masked) and ``filled_mask [N]``: True where the point's
    segment has at least one masked point. A point with segment -1 is a segment of its own. (PointDC distils
    such super-voxel means of the 2D features, which also reach the unseen points of a partly seen super-voxel.)
    """
    seg = torch.where(segments >= 0, segments, -1 - torch.arange(len(segments), device=segments.device))
    _, inverse = torch.unique(seg, return_inverse=True)
    k = int(inverse.max()) + 1 if len(inverse) else 0
    sums = values.new_zeros(k, values.shape[1]).index_add_(0, inverse[mask], values[mask])
    counts = torch.bincount(inverse[mask], minlength=k)
    return (sums / counts.clamp(min=1)[:, None].to(values.dtype))[inverse], counts[inverse] > 0


def vote(labels: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """Every point takes the most frequent label of its segment (points with segment -1 keep theirs)."""
    keep = segments >= 0
    if not keep.any():
        return labels
    ids, inverse = torch.unique(segments[keep], return_inverse=True)
    k = int(labels.max()) + 1
    hist = torch.zeros(len(ids), k, dtype=torch.long, device=labels.device)
    hist.index_put_((inverse, labels[keep]), torch.ones_like(inverse), accumulate=True)
    out = labels.clone()
    out[keep] = hist.argmax(1)[inverse]
    return out


def assign_clusters(point_feats: torch.Tensor, centroids: torch.Tensor, segments: torch.Tensor = None
                    ) -> torch.Tensor:
    """Cluster id of every point: the nearest (cosine) centroid of its super-point's mean feature, or of its
    own feature where it has no super-point."""
    f = F.normalize(point_feats.float(), dim=1)
    own = (f @ centroids.T).argmax(1)
    if segments is None:
        return own
    pooled, index = segment_pool(f, segments)
    seg = (F.normalize(pooled, dim=1) @ centroids.T).argmax(1)
    return torch.where(index >= 0, seg[index.clamp(min=0)], own)
