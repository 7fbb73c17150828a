"""PartDistill's point student inside the Runner: a voxel segmentor trained with the forward distillation loss on
knowledge units instead of labels."""
from typing import List, Optional

import torch
import torch.nn.functional as F

from pc_kd.models.losses.part_distill import pad_units, part_class_weights, part_distill_loss
from pc_kd.registry import MODELS

from .sparse_segmentor import SparseSegmentor


@MODELS.register_module()
class PartDistillSegmentor(SparseSegmentor):
    """A :class:`SparseSegmentor` (``decode_head.num_classes`` = the category's parts) whose ``loss`` mode is
    PartDistill's forward distillation loss (:func:`~pc_kd.models.losses.part_distill.part_distill_loss`, class
    weights of the batch by :func:`~pc_kd.models.losses.part_distill.part_class_weights`) over each sample's
    ``part_units`` (``scores [N_b, K_b]``, ``labels [K_b]``: :class:`~pc_kd.datasets.transforms.PackPartUnitsInputs`).
    No label is read in training. ``predict`` is the segmentor's (every point its voxel's argmax part).

    Shapes of a batch may differ in point and unit counts: they are padded (points and units with score 0) and the
    loss is the mean over the real points, which equals the anchor's per-batch mean when every shape has N points.
    """

    def forward(self, inputs: dict, data_samples: Optional[List] = None, mode: str = "tensor"):
        if mode != "loss":
            return super().forward(inputs, data_samples, mode)
        if data_samples is None or any("part_units" not in s for s in data_samples):
            raise ValueError("PartDistillSegmentor: the loss needs every data sample's part_units (scores [N, K], "
                             "labels [K]); pack the samples with PackPartUnitsInputs")
        per_cloud = inputs["points"].split(self.point_logits(inputs))  # B x [N_b, P]
        device = per_cloud[0].device
        n = max(len(x) for x in per_cloud)
        logits = torch.stack([F.pad(x, (0, 0, 0, n - len(x))) for x in per_cloud])  # [B, N, P]
        for cloud, s in zip(per_cloud, data_samples):
            sc, lb = s.part_units.scores, s.part_units.labels
            if sc.shape != (len(cloud), lb.numel()):
                raise ValueError(f"PartDistillSegmentor: sample {s.metainfo.get('sample_idx')} has part_units.scores "
                                 f"{tuple(sc.shape)} for {len(cloud)} points and {lb.numel()} unit labels")
        scores, labels = pad_units([s.part_units.scores.to(device) for s in data_samples],
                                   [s.part_units.labels.to(device) for s in data_samples], n)  # [B, N, K], [B, K]
        weights = part_class_weights(scores, labels, logits.shape[-1])
        real = sum(len(x) for x in per_cloud)
        loss = part_distill_loss(logits.float(), scores, labels, weights) * (logits.shape[0] * n / max(real, 1))
        return dict(loss_part_distill=loss)
