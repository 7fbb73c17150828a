"""Per-voxel / per-point semantic segmentation head."""
import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from pc_kd.registry import MODELS
from pc_kd.structures.class_names import IGNORE_INDEX


@MODELS.register_module()
class SegHead(BaseModule):
    """Linear classifier ``[M, C] -> [M, num_classes]`` with a cross-entropy loss that skips ``ignore_index``.

    Args:
        class_weight: optional per-class loss weights (length ``num_classes``).
    """

    def __init__(self, in_channels: int, num_classes: int, ignore_index: int = IGNORE_INDEX,
                 class_weight=None, loss_weight: float = 1.0, dropout: float = 0.0, init_cfg=None):
        super().__init__(init_cfg)
        self.num_classes, self.ignore_index, self.loss_weight = num_classes, ignore_index, loss_weight
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.cls = nn.Linear(in_channels, num_classes)
        self.register_buffer("class_weight", None if class_weight is None else torch.as_tensor(class_weight).float(),
                             persistent=False)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.cls(self.dropout(feats))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> dict:
        """``logits [M, K]``, ``labels [M]`` int64 (``ignore_index`` skipped) -> ``{'loss_seg': scalar}``."""
        if (labels != self.ignore_index).sum() == 0:
            return {"loss_seg": logits.sum() * 0.0}
        loss = F.cross_entropy(logits, labels, weight=self.class_weight, ignore_index=self.ignore_index)
        return {"loss_seg": loss * self.loss_weight}
