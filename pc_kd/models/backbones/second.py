"""SECOND's 2D BEV backbone: stages of 3x3 convolutions, each starting with a strided one."""
from typing import List, Sequence

import torch
from torch import nn

from pc_kd.registry import MODELS


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> List[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
            nn.ReLU(inplace=True)]


@MODELS.register_module()
class SECOND(nn.Module):
    """``[B, in_channels, H, W]`` -> one map per stage; stage k has ``out_channels[k]`` channels, stride
    ``prod(layer_strides[:k + 1])`` and ``1 + layer_nums[k]`` convolutions."""

    def __init__(self, in_channels: int = 64, out_channels: Sequence[int] = (64, 128, 256),
                 layer_nums: Sequence[int] = (3, 5, 5), layer_strides: Sequence[int] = (2, 2, 2)):
        super().__init__()
        if not len(out_channels) == len(layer_nums) == len(layer_strides):
            raise ValueError("SECOND: out_channels, layer_nums and layer_strides need one entry per stage")
        self.stages = nn.ModuleList()
        cin = in_channels
        for cout, num, stride in zip(out_channels, layer_nums, layer_strides):
            layers = conv_bn_relu(cin, cout, 3, stride)
            for _ in range(num):
                layers += conv_bn_relu(cout, cout)
            self.stages.append(nn.Sequential(*layers))
            cin = cout

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs
