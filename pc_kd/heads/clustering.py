"""Clustering of point features for unsupervised segmentation: cosine k-means, pooling over super-points,
per-super-point voting, and the hook that fits the cluster centres on the evaluated set."""
from typing import Iterator, List, Tuple

import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.logging import print_log

from pc_kd.engine.runner import bare_model
from pc_kd.registry import HOOKS


def kmeans(x: torch.Tensor, k: int, iters: int = 80, seed: int = 0, cosine: bool = True
           ) -> Tuple[torch.Tensor, torch.Tensor]:
    """k-means (k-means++ seeding) of ``x [M, C]``; with ``cosine`` on L2-normalised rows (spherical).

    Returns ``centroids [k, C]`` and ``assign [M]``. Deterministic for a given ``seed``.
    """
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"kmeans: expected a non-empty [M, C] tensor, got {tuple(x.shape)}")
    if k > x.shape[0]:
        raise ValueError(f"kmeans: k = {k} clusters asked for only {x.shape[0]} items (super-points); lower k or "
                         f"use smaller super-points")
    x = F.normalize(x.float(), dim=1) if cosine else x.float()
    g = torch.Generator(device="cpu").manual_seed(seed)
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


def point_features(model, loader) -> Iterator[Tuple[torch.Tensor, object, torch.Tensor]]:
    """Run ``model`` (with ``point_features_list``) over ``loader`` in eval mode without gradients; yield
    ``(features [N, C], data sample, input cloud [N, 3 + F])`` per cloud, then restore the training mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                data = model.data_preprocessor(batch, False)
                yield from zip(model.point_features_list(data["inputs"]), data["data_samples"],
                               batch["inputs"]["points"])
    finally:
        model.train(was_training)


def superpoint_features(model, loader) -> Tuple[List[str], List[torch.Tensor]]:
    """Per scene of ``loader``: its points file and the ``[S, C]`` mean student feature of each super-point."""
    keys, pooled = [], []
    for feats, sample, _ in point_features(model, loader):
        keys.append(sample.metainfo["lidar_path"])
        pooled.append(segment_pool(feats, sample.gt_pts_seg.superpoints.to(feats.device))[0])
    return keys, pooled


@HOOKS.register_module()
class ClusterCentroidsHook(Hook):
    """Before each validation / test epoch, run the model over that set (``mode='tensor'`` gives per-point
    features), pool the features per super-point, fit ``num_clusters`` cosine k-means centres and hand them
    to the model (``model.set_centroids``). Predictions are then the super-points' nearest centres, scored
    with Hungarian matching; this is the transductive evaluation of PointDC."""

    priority = "LOW"

    def __init__(self, num_clusters: int = None, iters: int = 80, seed: int = 0):
        self.num_clusters, self.iters, self.seed = num_clusters, iters, seed

    def _fit(self, runner, loader):
        model = bare_model(runner.model)
        _, pooled = superpoint_features(model, loader)
        k = self.num_clusters or len(loader.dataset.metainfo["classes"])
        centroids, _ = kmeans(torch.cat(pooled), k, self.iters, self.seed)
        model.set_centroids(centroids)
        print_log(f"ClusterCentroidsHook: {k} centres from {sum(len(p) for p in pooled)} super-points", "current")

    def before_val_epoch(self, runner) -> None:
        self._fit(runner, runner.val_dataloader)

    def before_test_epoch(self, runner) -> None:
        self._fit(runner, runner.test_dataloader)
