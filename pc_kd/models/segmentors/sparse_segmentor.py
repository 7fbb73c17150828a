"""Voxel-based 3D semantic segmentor: preprocessor (voxelize) -> sparse backbone -> head -> per-point labels."""
from typing import List, Optional

import torch
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from pc_kd.registry import MODELS


@MODELS.register_module()
class SparseSegmentor(BaseModel):
    """Segments every input point with the class of its voxel.

    Args:
        backbone: config of a voxel backbone called as ``backbone(voxel_feats, coords, spatial_shape, B)``.
        decode_head: config of a head with ``forward(feats) -> logits`` and ``loss(logits, labels)``.
        data_preprocessor: config of :class:`PointDataPreprocessor` (sets the voxel size).

    Modes (mmengine): ``loss`` -> dict of losses (cross-entropy over points, each point taking its voxel's
    logits); ``predict`` -> data samples with ``pred_pts_seg.pts_semantic_mask [N]``; ``tensor`` -> voxel logits.
    """

    def __init__(self, backbone: dict, decode_head: dict, data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor or dict(type="PointDataPreprocessor"),
                         init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.decode_head = MODELS.build(decode_head)

    def extract_feat(self, inputs: dict) -> torch.Tensor:
        """``[M, C]`` backbone features of the voxels in ``inputs['voxels']``."""
        vox = inputs["voxels"]
        return self.backbone(inputs["voxel_feats"], vox.spconv_indices(), vox.spconv_shape, vox.batch_size)

    def point_logits(self, inputs: dict) -> torch.Tensor:
        """``[N, num_classes]`` logits of every input point (its voxel's)."""
        return self.decode_head(self.extract_feat(inputs))[inputs["voxels"].point2voxel]

    def point_features_list(self, inputs: dict) -> List[torch.Tensor]:
        """Per cloud, the ``[N_b, num_classes]`` logits of its points (what ``pc_kd.engine.point_features``
        reads, as from a distiller's features)."""
        return inputs["points"].split(self.point_logits(inputs))

    def forward(self, inputs: dict, data_samples: Optional[List] = None, mode: str = "tensor"):
        if mode == "loss":
            labels = torch.cat([s.gt_pts_seg.pts_semantic_mask for s in data_samples]).to(
                inputs["voxel_feats"].device)
            return self.decode_head.loss(self.point_logits(inputs), labels)
        if mode == "predict":
            pred = self.point_logits(inputs).argmax(1)
            for sample, labels in zip(data_samples, inputs["points"].split(pred)):
                sample.pred_pts_seg = BaseDataElement(pts_semantic_mask=labels)
            return data_samples
        if mode == "tensor":
            return self.decode_head(self.extract_feat(inputs))
        raise ValueError(f"SparseSegmentor: unknown mode {mode!r}; expected 'loss', 'predict' or 'tensor'")
