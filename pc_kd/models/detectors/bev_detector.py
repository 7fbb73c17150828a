"""One BEV detector for LiDAR, camera and fusion: modality encoders -> (fuser) -> BEV backbone -> neck -> head."""
from typing import Dict, List, Optional

import numpy as np
import torch
from mmengine.model import BaseModel
from torch import nn

from pc_kd.registry import MODELS


@MODELS.register_module()
class BEVDetector(BaseModel):
    """BEV 3D detector (CenterPoint / BEVDepth / BEVFusion layout).

    Args:
        lidar_encoder: points -> ``[B, C_l, H, W]`` (e.g. :class:`PillarBEVEncoder`), or None.
        camera_encoder: images -> dict ``bev [B, C_c, H, W]``, ``depth`` (e.g. :class:`CameraBEVEncoder`), or None.
        fuser: combines ``[camera, lidar]`` BEV maps when both are given (e.g. :class:`ConvFuser`).
        backbone, neck, head: SECOND, SECONDFPN, CenterHead.
        motion: a motion cue from the LiDAR sweeps (e.g. :class:`SweepMotion`), given to the head beside the neck
            output (the head's ``in_channels`` count both), or None.
        bn_momentum: if given, the momentum of every BatchNorm in the model. The encoders, SECOND and the FPN use
            mmdet3d's 0.01, whose running statistics trail the weights by ~100 iterations: right for 20 epochs,
            stale after a 300-iteration run (the synthetic configs set 0.1).

    :meth:`extract` returns what a distiller reads without editing the model: ``bev_lidar`` / ``bev_camera``
    (per modality), ``bev_low`` (the modality BEV after the fuser, the backbone's input), ``bev_high`` (the neck
    output), ``motion`` (with a motion cue; the head reads ``bev_high`` and ``motion`` stacked on channels),
    ``head`` (the head's per-task output maps) and ``depth`` (camera).
    """

    def __init__(self, head: dict, backbone: dict, neck: dict, lidar_encoder: Optional[dict] = None,
                 camera_encoder: Optional[dict] = None, fuser: Optional[dict] = None,
                 motion: Optional[dict] = None, data_preprocessor: Optional[dict] = None,
                 bn_momentum: Optional[float] = None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor or dict(type="DetDataPreprocessor"), init_cfg=init_cfg)
        if lidar_encoder is None and camera_encoder is None:
            raise ValueError("BEVDetector: give a lidar_encoder, a camera_encoder or both")
        if lidar_encoder is not None and camera_encoder is not None and fuser is None:
            raise ValueError("BEVDetector: a LiDAR + camera detector needs a fuser (e.g. ConvFuser)")
        self.lidar_encoder = MODELS.build(lidar_encoder) if lidar_encoder else None
        self.camera_encoder = MODELS.build(camera_encoder) if camera_encoder else None
        self.fuser = MODELS.build(fuser) if fuser and lidar_encoder and camera_encoder else None
        self.backbone, self.neck, self.head = MODELS.build(backbone), MODELS.build(neck), MODELS.build(head)
        if motion is not None and lidar_encoder is None:
            raise ValueError("BEVDetector: a motion cue needs LiDAR sweeps; give a lidar_encoder too")
        self.motion = MODELS.build(motion) if motion else None
        if bn_momentum is not None:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.momentum = bn_momentum

    def extract(self, inputs: dict) -> Dict[str, object]:
        out: Dict[str, object] = {}
        maps = []
        if self.camera_encoder is not None:
            if "imgs" not in inputs:
                raise KeyError("BEVDetector: the camera encoder needs images; add LoadMultiViewImages to the pipeline")
            cam = self.camera_encoder(inputs["imgs"], inputs["lidar2img"], inputs["bev_aug"])
            out["bev_camera"], out["depth"] = cam["bev"], cam["depth"]
            maps.append(cam["bev"])
        if self.lidar_encoder is not None:
            out["bev_lidar"] = self.lidar_encoder(inputs["points"])
            maps.append(out["bev_lidar"])
        if len(maps) > 1 and maps[0].shape[-2:] != maps[1].shape[-2:]:
            raise ValueError(f"BEVDetector: camera BEV {tuple(maps[0].shape[-2:])} and LiDAR BEV "
                             f"{tuple(maps[1].shape[-2:])} cells differ; give both the same grid")
        out["bev_low"] = self.fuser(maps) if self.fuser is not None else maps[0]
        out["bev_high"] = self.neck(self.backbone(out["bev_low"]))
        if self.motion is not None:
            out["motion"] = self.motion(inputs["points"])
        out["head"] = self.head(self.head_input(out["bev_high"], out.get("motion")))
        return out

    @staticmethod
    def head_input(bev_high: torch.Tensor, motion: Optional[torch.Tensor] = None) -> torch.Tensor:
        """What the head reads: the neck output, and the motion cue stacked after it when there is one."""
        return bev_high if motion is None else torch.cat([bev_high, motion.to(bev_high.dtype)], 1)

    def loss(self, inputs: dict, data_samples: List) -> Dict[str, torch.Tensor]:
        return self.loss_from_features(self.extract(inputs), inputs, data_samples)

    def loss_from_features(self, feats: dict, inputs: dict, data_samples: List) -> Dict[str, torch.Tensor]:
        """The detection losses (head; LiDAR depth for the camera path) from an :meth:`extract` output."""
        gts = [s.gt_instances_3d for s in data_samples]
        losses = self.head.loss(feats["head"], [g.bboxes_3d for g in gts], [g.labels_3d for g in gts])
        if "depth" in feats and "depth_maps" in inputs:
            losses["loss_depth"] = self.camera_encoder.view_transform.depth_loss(feats["depth"], inputs["depth_maps"])
        return losses

    def predict(self, inputs: dict, data_samples: List) -> List:
        preds = self.head.predict(self.extract(inputs)["head"])
        for sample, pred in zip(data_samples, preds):
            aug = np.asarray(sample.metainfo.get("bev_aug_matrix", np.eye(4)), dtype=np.float64)
            if not np.allclose(aug, np.eye(4)):  # back to the sensor's LiDAR frame the metric expects
                pred.bboxes_3d = pred.bboxes_3d.similarity(np.linalg.inv(aug))
            sample.pred_instances_3d = pred
        return data_samples

    def forward(self, inputs: dict, data_samples: Optional[List] = None, mode: str = "tensor"):
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "predict":
            return self.predict(inputs, data_samples)
        if mode == "tensor":
            return self.extract(inputs)
        raise ValueError(f"BEVDetector: unknown mode {mode!r}; expected 'loss', 'predict' or 'tensor'")
