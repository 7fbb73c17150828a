"""Batching of detection samples: ragged point clouds stay a list, multi-view images are stacked and normalised."""
from typing import Sequence

import numpy as np
import torch
from mmengine.model import BaseDataPreprocessor

from pc_kd.utils.image import IMAGENET_MEAN, IMAGENET_STD
from pc_kd.registry import MODELS


@MODELS.register_module()
class DetDataPreprocessor(BaseDataPreprocessor):
    """Output ``inputs``: ``points`` (list of B ``[N_b, C]``), and when images were loaded ``imgs [B, V, 3, H, W]``
    (``(x - mean) / std``), ``lidar2img [B, V, 4, 4]``, ``bev_aug [B, 4, 4]`` and ``depth_maps [B, V, H, W]``
    (when the samples carry them), all float32 on the model's device."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 non_blocking: bool = False):
        super().__init__(non_blocking)
        self.register_buffer("mean", torch.tensor(mean).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 1, 3, 1, 1), persistent=False)

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        raw, samples = data["inputs"], data.get("data_samples")
        inputs = {"points": list(raw["points"])}
        for i, cloud in enumerate(inputs["points"]):
            if cloud.ndim != 2 or cloud.shape[1] < 3:
                raise ValueError(f"DetDataPreprocessor: sample {i} has points of shape {tuple(cloud.shape)}; "
                                 f"expected [N, 3 + C]")
        if "imgs" in raw:
            shapes = {tuple(im.shape) for im in raw["imgs"]}
            if len(shapes) != 1:
                raise ValueError(f"DetDataPreprocessor: samples have images of different shapes {sorted(shapes)}; "
                                 f"set one final_hw and camera list in LoadMultiViewImages")
            imgs = torch.stack(list(raw["imgs"]))
            inputs["imgs"] = (imgs - self.mean) / self.std
            dev = imgs.device
            inputs["lidar2img"] = torch.stack([torch.as_tensor(np.asarray(s.lidar2img), dtype=torch.float64)
                                               for s in samples]).to(dev)
            inputs["bev_aug"] = torch.stack([torch.as_tensor(np.asarray(s.bev_aug_matrix), dtype=torch.float64)
                                             for s in samples]).to(dev)
            if all("depth_maps" in s for s in samples):
                inputs["depth_maps"] = torch.stack([s.depth_maps for s in samples]).to(dev)
        return dict(inputs=inputs, data_samples=samples)
