"""PointDC's second stage: train the distilled student on pseudo-labels from super-point k-means."""
from typing import Dict

import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmengine.logging import print_log

from pc_kd.engine.runner import bare_model
from pc_kd.heads.clustering import kmeans, segment_pool, superpoint_features
from pc_kd.registry import HOOKS, MODELS

from .point_distiller import PointFeatureDistiller


@MODELS.register_module()
class SuperPointClustering(PointFeatureDistiller):
    """The distiller's student (same module names, so ``load_from`` the distillation checkpoint) trained with
    a fixed-centroid classifier: ``logits = cos(feature, primitive) / temperature`` against the primitive
    that k-means gave each point's super-point (:class:`ReclusterHook` refits them every few epochs).

    Args:
        num_primitives: P, the k of the super-point k-means (PointDC: 20 on ScanNet, 13 on S3DIS).
        temperature: of the cosine classifier.
    """

    def __init__(self, num_primitives: int = 20, temperature: float = 0.1, **kwargs):
        kwargs.setdefault("distill_losses", {})
        kwargs.setdefault("loss_mapping", {})
        super().__init__(**kwargs)
        self.num_primitives, self.temperature = num_primitives, temperature
        self.register_buffer("primitives", torch.zeros(0), persistent=False)
        self.pseudo: Dict[str, torch.Tensor] = {}

    def set_pseudo_labels(self, primitives: torch.Tensor, pseudo: Dict[str, torch.Tensor]) -> None:
        self.primitives, self.pseudo = primitives, pseudo

    def loss(self, inputs: dict, data_samples) -> dict:
        if self.primitives.numel() == 0:
            raise RuntimeError("SuperPointClustering: no pseudo-labels; add dict(type='ReclusterHook') to "
                               "custom_hooks")
        feats = self.point_features_list(inputs)
        logits, labels = [], []
        for f, sample in zip(feats, data_samples):
            key = sample.metainfo["lidar_path"]
            if key not in self.pseudo:
                raise KeyError(f"SuperPointClustering: no pseudo-labels for {key}; ReclusterHook runs over the "
                               f"training set before the first epoch")
            _, index = segment_pool(f, sample.gt_pts_seg.superpoints.to(f.device))
            keep = index >= 0
            logits.append(F.normalize(f[keep], dim=1) @ F.normalize(self.primitives, dim=1).T / self.temperature)
            labels.append(self.pseudo[key].to(f.device)[index[keep]])
        return {"loss_cluster": F.cross_entropy(torch.cat(logits), torch.cat(labels))}


@HOOKS.register_module()
class ReclusterHook(Hook):
    """Every ``interval`` epochs (and before the first, or the first after a resume, since pseudo-labels are
    not stored in checkpoints), run the model over the training set, pool its features per super-point,
    k-means them into the model's ``num_primitives`` and hand the primitives and each scene's super-point
    pseudo-labels to the model (``set_pseudo_labels``)."""

    priority = "LOW"

    def __init__(self, interval: int = 5, iters: int = 80, seed: int = 0):
        self.interval, self.iters, self.seed = interval, iters, seed

    def before_train_epoch(self, runner) -> None:
        model = bare_model(runner.model)
        if runner.epoch % self.interval and model.primitives.numel():
            return
        keys, pooled = superpoint_features(model, runner.train_dataloader)
        primitives, assign = kmeans(torch.cat(pooled), model.num_primitives, self.iters, self.seed + runner.epoch)
        pseudo = dict(zip(keys, torch.split(assign, [len(p) for p in pooled])))
        model.set_pseudo_labels(primitives, pseudo)
        print_log(f"ReclusterHook: epoch {runner.epoch}, {len(primitives)} primitives from "
                  f"{len(assign)} super-points of {len(keys)} scenes", "current")
