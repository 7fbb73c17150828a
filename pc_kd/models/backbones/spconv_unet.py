"""Sparse-convolution U-Net over voxels (the student backbone of the point pipelines)."""
from typing import Sequence

import torch
from mmengine.model import BaseModule
from torch import nn

from pc_kd.ops import sparse as sp
from pc_kd.registry import MODELS


def _subm_block(in_ch: int, out_ch: int, key: str):
    return sp.SparseSequential(
        sp.SubMConv3d(in_ch, out_ch, 3, padding=1, bias=False, indice_key=key),
        nn.BatchNorm1d(out_ch), nn.ReLU(inplace=True))


@MODELS.register_module()
class SpconvUNet(BaseModule):
    """U-Net of submanifold convolutions with strided down- and inverse up-sampling.

    Args:
        in_channels: voxel feature channels C_in.
        channels: channels per level; level i runs at stride 2**i.
        out_channels: channels of the returned per-voxel features (default ``channels[0]``).

    ``forward(voxel_feats [M, C_in], coords [M, 4] int32 (b, z, y, x), spatial_shape (Z, Y, X), batch_size)``
    returns ``[M, out_channels]`` features of the input voxels, in their order.
    """

    def __init__(self, in_channels: int, channels: Sequence[int] = (32, 64, 128, 256), out_channels: int = None,
                 init_cfg=None):
        super().__init__(init_cfg)
        self.channels = list(channels)
        self.out_channels = out_channels or channels[0]
        self.stem = _subm_block(in_channels, channels[0], "subm0")
        self.down, self.enc, self.up, self.dec = (nn.ModuleList() for _ in range(4))
        for i in range(1, len(channels)):
            self.down.append(sp.SparseSequential(
                sp.SparseConv3d(channels[i - 1], channels[i], 2, stride=2, bias=False, indice_key=f"down{i}"),
                nn.BatchNorm1d(channels[i]), nn.ReLU(inplace=True)))
            self.enc.append(_subm_block(channels[i], channels[i], f"subm{i}"))
        for i in range(len(channels) - 1, 0, -1):
            self.up.append(sp.SparseSequential(
                sp.SparseInverseConv3d(channels[i], channels[i - 1], 2, bias=False, indice_key=f"down{i}"),
                nn.BatchNorm1d(channels[i - 1]), nn.ReLU(inplace=True)))
            self.dec.append(_subm_block(2 * channels[i - 1], channels[i - 1], f"subm{i - 1}"))
        self.head = nn.Linear(channels[0], self.out_channels) if self.out_channels != channels[0] else nn.Identity()

    def forward(self, voxel_feats: torch.Tensor, coords: torch.Tensor, spatial_shape, batch_size: int):
        x = sp.SparseConvTensor(voxel_feats, coords.int(), list(spatial_shape), batch_size)
        x = self.stem(x)
        skips = [x]
        for down, enc in zip(self.down, self.enc):
            x = enc(down(x))
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = up(x)
            skip = skips.pop()
            x = dec(x.replace_feature(torch.cat([x.features, skip.features], 1)))
        return self.head(x.features)
