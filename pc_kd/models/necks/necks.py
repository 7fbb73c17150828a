"""SECONDFPN (multi-scale BEV maps brought to one stride and concatenated) and ConvFuser (BEVFusion's
camera + LiDAR BEV fuser)."""
from typing import List, Sequence

import torch
from torch import nn

from pc_kd.registry import MODELS


@MODELS.register_module()
class SECONDFPN(nn.Module):
    """Maps ``[B, in_channels[k], H_k, W_k]`` -> each resampled by ``upsample_strides[k]`` (a transposed
    convolution for >= 1, a strided convolution for < 1) to ``out_channels[k]`` channels -> concatenated:
    ``[B, sum(out_channels), H, W]``."""

    def __init__(self, in_channels: Sequence[int] = (64, 128, 256), out_channels: Sequence[int] = (128, 128, 128),
                 upsample_strides: Sequence[float] = (1, 2, 4)):
        super().__init__()
        if not len(in_channels) == len(out_channels) == len(upsample_strides):
            raise ValueError("SECONDFPN: in_channels, out_channels and upsample_strides need one entry per level")
        self.out_channels = sum(out_channels)
        self.deblocks = nn.ModuleList()
        for cin, cout, stride in zip(in_channels, out_channels, upsample_strides):
            if stride >= 1:
                conv = nn.ConvTranspose2d(cin, cout, int(stride), int(stride), bias=False)
            else:
                k = round(1 / stride)
                conv = nn.Conv2d(cin, cout, k, k, bias=False)
            self.deblocks.append(nn.Sequential(conv, nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
                                               nn.ReLU(inplace=True)))

    def forward(self, feats: List[torch.Tensor]) -> torch.Tensor:
        ups = [block(f) for block, f in zip(self.deblocks, feats)]
        if len({u.shape[-2:] for u in ups}) != 1:
            raise ValueError(f"SECONDFPN: levels resampled to different sizes {[tuple(u.shape[-2:]) for u in ups]}; "
                             f"the BEV size must be divisible by the backbone's strides")
        return torch.cat(ups, 1)


@MODELS.register_module()
class ConvFuser(nn.Module):
    """Concatenate BEV maps of several modalities (``[B, in_channels[k], H, W]`` each, same grid) -> 3x3 conv +
    BN + ReLU -> ``[B, out_channels, H, W]``."""

    def __init__(self, in_channels: Sequence[int], out_channels: int):
        super().__init__()
        self.out_channels = out_channels
        self.in_channels = list(in_channels)
        self.fuse = nn.Sequential(nn.Conv2d(sum(in_channels), out_channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, feats: List[torch.Tensor]) -> torch.Tensor:
        shapes = [tuple(f.shape[1:]) for f in feats]
        if [s[0] for s in shapes] != self.in_channels or len({s[1:] for s in shapes}) != 1:
            raise ValueError(f"ConvFuser: got BEV maps {shapes}, expected channels {self.in_channels} on one grid")
        return self.fuse(torch.cat(feats, 1))
