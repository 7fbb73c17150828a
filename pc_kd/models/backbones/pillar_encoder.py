"""LiDAR -> BEV: a dense PointPillars-style encoder (runs on CPU as well as GPU; no sparse ops)."""
from typing import List, Sequence

import torch
from torch import nn

from pc_kd.ops import scatter_reduce_points
from pc_kd.registry import MODELS


@MODELS.register_module()
class PillarBEVEncoder(nn.Module):
    """Points of each sample -> a ``[B, C, H, W]`` BEV map (rows along y, columns along x, cell (0, 0) at
    ``(x_min, y_min)``).

    Every point inside ``point_cloud_range`` gets ``[x, y, z, extra features..., offsets to its pillar's point
    mean (3), offset to its pillar's centre (2)]``, a Linear + BatchNorm + ReLU lifts it to ``out_channels``
    and each pillar keeps the channel-wise max over its points.

    With ``time_lag_edges`` the points are first split by their last column (the time lag of multi-sweep
    input, seconds) into ``len(time_lag_edges) + 1`` groups; each group is pooled on its own (its own pillar
    means) and the group maps are stacked on channels, ``[B, out_channels * groups, H, W]``, the key sweep
    first. A moving object then shows as key and earlier occupancy in different cells of the same channel
    pair, which a convolution compares directly.

    Args:
        in_channels: columns of the input points (xyz first, then e.g. intensity, time lag).
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` metres, LiDAR frame.
        pillar_size: ``(dx, dy)`` metres.
        out_channels: channels per group.
        time_lag_edges: increasing time lags (s) between the groups, e.g. ``(0.25,)`` for a key sweep and one
            earlier sweep 0.5 s before; empty (default) for one group.
    """

    def __init__(self, in_channels: int, point_cloud_range: Sequence[float], pillar_size: Sequence[float],
                 out_channels: int = 64, time_lag_edges: Sequence[float] = ()):
        super().__init__()
        self.num_groups = len(time_lag_edges) + 1
        self.in_channels, self.out_channels = in_channels, out_channels * self.num_groups
        self.register_buffer("time_lag_edges", torch.tensor(list(time_lag_edges), dtype=torch.float32),
                             persistent=False)
        self.register_buffer("pc_range", torch.tensor(point_cloud_range, dtype=torch.float32), persistent=False)
        self.register_buffer("pillar", torch.tensor(pillar_size[:2], dtype=torch.float32), persistent=False)
        x0, y0, _, x1, y1, _ = point_cloud_range
        self.grid_hw = (round((y1 - y0) / pillar_size[1]), round((x1 - x0) / pillar_size[0]))
        self.pfn = nn.Sequential(nn.Linear(in_channels + 5, out_channels, bias=False),
                                 nn.BatchNorm1d(out_channels, eps=1e-3, momentum=0.01), nn.ReLU(inplace=True))

    def forward(self, points: List[torch.Tensor]) -> torch.Tensor:
        """``points``: B tensors ``[N_b, in_channels]`` (LiDAR frame, metres) -> ``[B, out_channels * groups,
        H, W]``."""
        H, W = self.grid_hw
        G = self.num_groups
        feats, cells = [], []
        for b, pts in enumerate(points):
            if pts.ndim != 2 or pts.shape[1] != self.in_channels:
                raise ValueError(f"PillarBEVEncoder: sample {b} has points {tuple(pts.shape)}, expected "
                                 f"[N, {self.in_channels}] (set in_channels to the loaded point columns)")
            xyz = pts[:, :3]
            inside = ((xyz >= self.pc_range[:3]) & (xyz < self.pc_range[3:])).all(1)
            pts = pts[inside]
            ij = torch.floor((pts[:, :2] - self.pc_range[:2]) / self.pillar).long()
            ix, iy = ij[:, 0].clamp_(0, W - 1), ij[:, 1].clamp_(0, H - 1)
            group = torch.bucketize(pts[:, -1].contiguous(), self.time_lag_edges) if G > 1 else 0
            cells.append(((b * G + group) * H + iy) * W + ix)
            feats.append(pts)
        pts, cell = torch.cat(feats), torch.cat(cells)
        num_cells = len(points) * G * H * W
        mean = scatter_reduce_points(pts[:, :3], cell, num_cells, "mean")[cell]
        centre = (torch.stack([cell % W, (cell // W) % H], 1).to(pts) + 0.5) * self.pillar + self.pc_range[:2]
        x = self.pfn(torch.cat([pts, pts[:, :3] - mean, pts[:, :2] - centre], 1))
        bev = scatter_reduce_points(x, cell, num_cells, "max")  # empty pillars stay 0
        return bev.view(len(points), G, H, W, -1).permute(0, 1, 4, 2, 3).reshape(len(points), -1, H, W)
