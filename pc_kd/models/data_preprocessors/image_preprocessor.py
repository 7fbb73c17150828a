"""Batch camera images for a 2D segmentation model: stack, scale to 0..1, normalise, flip in training."""
from typing import Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from pc_kd.registry import MODELS
from pc_kd.utils.image import IMAGENET_MEAN, IMAGENET_STD

from ..segmentors.image_segments import normalise_images


@MODELS.register_module()
class ImageSegDataPreprocessor(BaseDataPreprocessor):
    """``inputs['img']`` (a list of ``[3, H, W]`` uint8 tensors of one size) -> ``inputs['img'] [B, 3, H, W]``
    float, ``(x / 255 - mean) / std``. In training each sample is flipped left-right with probability
    ``flip_prob``, its ``target_sem_seg`` (and ``gt_sem_seg``) with it.

    Args:
        mean, std: per-channel statistics of images scaled to 0..1 (ImageNet's by default, what the pc_kd image
            backbones were trained with).
        flip_prob: the chance of a horizontal flip per training sample.
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                 flip_prob: float = 0.5, non_blocking: bool = False):
        super().__init__(non_blocking)
        self.mean, self.std, self.flip_prob = tuple(mean), tuple(std), flip_prob

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        images, samples = data["inputs"]["img"], data.get("data_samples")
        sizes = {tuple(im.shape) for im in images}
        if len(sizes) != 1 or len(next(iter(sizes))) != 3 or next(iter(sizes))[0] != 3:
            raise ValueError(f"ImageSegDataPreprocessor: expected [3, H, W] images of one size in a batch; got "
                             f"{sorted(sizes)}")
        x = normalise_images(torch.stack(list(images)).float() / 255, self.mean, self.std)
        if training and self.flip_prob > 0:
            flip = torch.rand(len(x)) < self.flip_prob
            x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)
            for i in torch.nonzero(flip).flatten().tolist():
                for key in ("target_sem_seg", "gt_sem_seg"):
                    if key in samples[i]:
                        getattr(samples[i], key).data = getattr(samples[i], key).data.flip(-1)
        return dict(inputs=dict(img=x), data_samples=samples)
