"""LiDAR -> BEV with sparse 3D convolutions (SECOND / CenterPoint-voxel): voxel means -> 3 stride-2 sparse stages
(x8) -> a stride-2 convolution along z -> dense map with the height folded into channels."""
from typing import List, Sequence

import torch
from torch import nn

from pc_kd.ops import sparse as sp
from pc_kd.registry import MODELS
from pc_kd.voxel import voxel_reduce, voxelize


def _block(cin, cout, conv, **kw):
    return sp.SparseSequential(conv(cin, cout, 3, bias=False, **kw), nn.BatchNorm1d(cout, eps=1e-3, momentum=0.01),
                               nn.ReLU(inplace=True))


@MODELS.register_module()
class SparseEncoder8x(nn.Module):
    """Points -> ``[B, out_channels, Y / 8, X / 8]`` (rows along y, cell (0, 0) at (x_min, y_min)).

    The points of each sample are voxelized over ``point_cloud_range`` at ``voxel_size`` (mean of each voxel's
    point rows as its feature); submanifold blocks at strides 1, 2, 4, 8 (``channels``), then a (3, 1, 1)
    convolution of stride 2 along z; the remaining z levels are stacked into channels ("height collapse"):
    ``out_channels = channels[-1] * z_levels``.
    """

    def __init__(self, in_channels: int, point_cloud_range: Sequence[float], voxel_size: Sequence[float],
                 channels: Sequence[int] = (16, 32, 64, 128)):
        super().__init__()
        self.in_channels, self.point_cloud_range, self.voxel_size = in_channels, list(point_cloud_range), list(voxel_size)
        shape = [round((point_cloud_range[i + 3] - point_cloud_range[i]) / voxel_size[i]) for i in range(3)]
        if shape[0] % 8 or shape[1] % 8:
            raise ValueError(f"SparseEncoder8x: the grid is {shape[0]} x {shape[1]} voxels; x and y must be "
                             f"multiples of 8")
        self.grid_xyz = shape
        z = shape[2]
        for _ in range(3):
            z = (z + 1) // 2
        if z < 3:
            raise ValueError(f"SparseEncoder8x: {shape[2]} voxels along z leave {z} < 3 levels after x8")
        self.z_levels = (z - 3) // 2 + 1
        self.out_channels = channels[-1] * self.z_levels
        c = channels
        layers = [_block(in_channels, c[0], sp.SubMConv3d, padding=1, indice_key="subm1"),
                  _block(c[0], c[0], sp.SubMConv3d, padding=1, indice_key="subm1")]
        for i in range(1, 4):
            layers += [_block(c[i - 1], c[i], sp.SparseConv3d, stride=2, padding=1, indice_key=f"spconv{i + 1}"),
                       _block(c[i], c[i], sp.SubMConv3d, padding=1, indice_key=f"subm{i + 1}"),
                       _block(c[i], c[i], sp.SubMConv3d, padding=1, indice_key=f"subm{i + 1}")]
        self.encoder = sp.SparseSequential(*layers)
        self.conv_out = sp.SparseSequential(
            sp.SparseConv3d(c[3], c[3], (3, 1, 1), stride=(2, 1, 1), padding=0, bias=False, indice_key="spconv_down2"),
            nn.BatchNorm1d(c[3], eps=1e-3, momentum=0.01), nn.ReLU(inplace=True))

    def forward(self, points: List[torch.Tensor]) -> torch.Tensor:
        for b, pts in enumerate(points):
            if pts.ndim != 2 or pts.shape[1] != self.in_channels:
                raise ValueError(f"SparseEncoder8x: sample {b} has points {tuple(pts.shape)}, expected "
                                 f"[N, {self.in_channels}]")
        cat = torch.cat(points)
        batch = torch.cat([torch.full((len(p),), b, dtype=torch.long, device=cat.device) for b, p in enumerate(points)])
        vox = voxelize(cat, self.voxel_size, self.point_cloud_range, batch_index=batch, batch_size=len(points))
        feats = voxel_reduce(cat, vox, "mean")
        x = sp.SparseConvTensor(feats, vox.spconv_indices(), self.grid_xyz[::-1], len(points))
        dense = self.conv_out(self.encoder(x)).dense()  # [B, C, Z', Y', X']
        B, C, Z, Y, X = dense.shape
        return dense.reshape(B, C * Z, Y, X)
