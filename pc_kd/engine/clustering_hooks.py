"""Runner hooks of unsupervised segmentation: cluster centres for evaluation, pseudo-labels for training."""
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log

from pc_kd.heads.clustering import kmeans
from pc_kd.registry import HOOKS

from .inference import on_rank0, superpoint_features_all_ranks
from .runner import bare_model


@HOOKS.register_module()
class ClusterCentroidsHook(Hook):
    """Before each validation / test epoch, run the model over that set (``mode='tensor'`` gives per-point
    features), pool the features per super-point, fit ``num_clusters`` cosine k-means centres and hand them
    to the model (``model.set_centroids``). Predictions are then the super-points' nearest centres, scored
    with Hungarian matching; this is the transductive evaluation of PointDC. ``restarts``: k-means seedings
    whose best objective is kept (see :func:`pc_kd.heads.kmeans`). Under several processes every rank pools its
    share of the set, the super-points of all of them are clustered once (rank 0) and every rank gets the same
    centres."""

    priority = "LOW"

    def __init__(self, num_clusters: int = None, iters: int = 80, seed: int = 0, restarts: int = 1):
        self.num_clusters, self.iters, self.seed, self.restarts = num_clusters, iters, seed, restarts

    def _fit(self, runner, loader):
        model = bare_model(runner.model)
        _, pooled = superpoint_features_all_ranks(model, loader)
        k = self.num_clusters or len(loader.dataset.metainfo["classes"])
        centroids = on_rank0(lambda: kmeans(torch.cat(pooled), k, self.iters, self.seed, restarts=self.restarts)[0])
        model.set_centroids(centroids.to(pooled[0].device))
        print_log(f"ClusterCentroidsHook: {k} centres from {sum(len(p) for p in pooled)} super-points", "current")

    def before_val_epoch(self, runner) -> None:
        self._fit(runner, runner.val_dataloader)

    def before_test_epoch(self, runner) -> None:
        self._fit(runner, runner.test_dataloader)


@HOOKS.register_module()
class ReclusterHook(Hook):
    """Every ``interval`` epochs (and before the first, or the first after a resume, since pseudo-labels are
    not stored in checkpoints), run the model over the training set, pool its features per super-point,
    k-means them into the model's ``num_primitives`` and hand the primitives and each scene's super-point
    pseudo-labels to the model (``set_pseudo_labels``).

    Pseudo-labels from a random network mean nothing, so training must start from a checkpoint (``load_from``,
    the distilled student, or ``--resume``); ``require_checkpoint=False`` lifts that. ``restarts``: k-means
    seedings whose best objective gives the pseudo-labels (see :func:`pc_kd.heads.kmeans`). Under several
    processes every rank gets the primitives and the pseudo-labels of every training scene (clustered by rank 0),
    since the sampler gives each rank other scenes every epoch.
    """

    priority = "LOW"

    def __init__(self, interval: int = 5, iters: int = 80, seed: int = 0, require_checkpoint: bool = True,
                 restarts: int = 1):
        self.interval, self.iters, self.seed, self.restarts = interval, iters, seed, restarts
        self.require_checkpoint = require_checkpoint

    def before_train(self, runner) -> None:
        if self.require_checkpoint and not runner._has_loaded:  # set by the Runner once it loaded or resumed
            raise ValueError("ReclusterHook: no checkpoint was loaded; this stage clusters the features of a "
                             "distilled student, so start it from one: tools/train.py CONFIG --cfg-options "
                             "load_from=work_dirs/<distillation work dir>/epoch_<N>.pth (or --resume)")

    def before_train_epoch(self, runner) -> None:
        model = bare_model(runner.model)
        if runner.epoch % self.interval and model.primitives.numel():
            return
        keys, pooled = superpoint_features_all_ranks(model, runner.train_dataloader)
        primitives, assign = on_rank0(lambda: kmeans(torch.cat(pooled), model.num_primitives, self.iters,
                                                     self.seed + runner.epoch, restarts=self.restarts))
        primitives, assign = primitives.to(pooled[0].device), assign.to(pooled[0].device)
        pseudo = dict(zip(keys, torch.split(assign, [len(p) for p in pooled])))
        model.set_pseudo_labels(primitives, pseudo)
        print_log(f"ReclusterHook: epoch {runner.epoch}, {len(primitives)} primitives from "
                  f"{len(assign)} super-points of {len(keys)} scenes", "current")
