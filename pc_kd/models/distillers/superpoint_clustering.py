"""PointDC's second stage: train the distilled student on pseudo-labels from super-point k-means."""
from typing import Dict

import torch
import torch.nn.functional as F

from pc_kd.heads.clustering import segment_pool
from pc_kd.registry import MODELS

from .point_distiller import PointFeatureDistiller


@MODELS.register_module()
class SuperPointClustering(PointFeatureDistiller):
    """The distiller's student (same module names, so ``load_from`` the distillation checkpoint) trained with
    a fixed-centroid classifier: ``logits = cos(feature, primitive) / temperature`` against the primitive
    that k-means gave each point's super-point (``pc_kd.engine.ReclusterHook`` refits them every few epochs).

    With ``distill_losses`` / ``loss_mapping`` (as in the distiller) their losses are added to the clustering
    loss, which keeps the features close to the teacher while they sharpen; without them (PointDC) only the
    clustering loss trains.

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
        records = self._run_student(inputs)
        feats = inputs["points"].split(self._connected(records, *self.feature))
        logits, labels = [], []
        for f, sample in zip(feats, data_samples):
            key = sample.metainfo["lidar_path"]
            if key not in self.pseudo:
                raise KeyError(f"SuperPointClustering: no pseudo-labels for {key}; ReclusterHook runs over the "
                               f"training set before the first epoch")
            _, index = segment_pool(f, sample.superpoints.to(f.device))
            keep = index >= 0
            logits.append(F.normalize(f[keep], dim=1) @ F.normalize(self.primitives, dim=1).T / self.temperature)
            labels.append(self.pseudo[key].to(f.device)[index[keep]])
        losses = {"loss_cluster": F.cross_entropy(torch.cat(logits), torch.cat(labels))}
        if self.loss_mapping:
            losses.update(self.distill_loss(records, inputs, data_samples))
        return losses
