"""Projection heads mapping student features to the teacher's dimension (distillation connectors)."""
from torch import nn

from pc_kd.registry import MODELS


@MODELS.register_module()
class PointProjection(nn.Module):
    """``[N, in_channels] -> [N, out_channels]``: Linear, or Linear-BN-ReLU-Linear with ``hidden``."""

    def __init__(self, in_channels: int, out_channels: int, hidden: int = 0):
        super().__init__()
        if hidden:
            self.net = nn.Sequential(nn.Linear(in_channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
                                     nn.Linear(hidden, out_channels))
        else:
            self.net = nn.Linear(in_channels, out_channels)

    def forward(self, x):
        return self.net(x)
