"""Point tokens for masked point modelling (Point-BERT / Point-MAE / ACT / ReCon): each centred neighbourhood
becomes one token by a mini-PointNet, each centre a positional embedding by an MLP."""
import torch
from torch import nn

from pc_kd.registry import MODELS


@MODELS.register_module()
class MiniPointNetTokenizer(nn.Module):
    """``neighbourhoods [B, G, K, 3]`` (centred on their centres, :func:`pc_kd.ops.group_neighbourhoods`) ->
    ``tokens [B, G, embed_dim]``: per point conv 3-128 (BN, ReLU) -256, the max over the group's points
    concatenated to every point's feature (512), conv 512-512 (BN, ReLU) -``embed_dim``, the max over the group
    (``hidden`` = (128, 256, 512), the anchors' widths; smaller ones for a CPU budget). Each token depends on its
    own group's points only, whatever their order."""

    def __init__(self, embed_dim: int = 384, hidden=(128, 256, 512)):
        super().__init__()
        self.embed_dim = embed_dim
        h0, h1, h2 = hidden
        self.first = nn.Sequential(nn.Conv1d(3, h0, 1), nn.BatchNorm1d(h0), nn.ReLU(inplace=True),
                                   nn.Conv1d(h0, h1, 1))
        self.second = nn.Sequential(nn.Conv1d(2 * h1, h2, 1), nn.BatchNorm1d(h2), nn.ReLU(inplace=True),
                                    nn.Conv1d(h2, embed_dim, 1))

    def forward(self, neighbourhoods: torch.Tensor) -> torch.Tensor:
        if neighbourhoods.dim() != 4 or neighbourhoods.shape[-1] != 3:
            raise ValueError(f"MiniPointNetTokenizer: neighbourhoods must be [B, G, K, 3], got "
                             f"{tuple(neighbourhoods.shape)}")
        b, g, k, _ = neighbourhoods.shape
        x = self.first(neighbourhoods.reshape(b * g, k, 3).transpose(1, 2))  # [BG, h1, K]
        pooled = x.max(2, keepdim=True).values
        x = self.second(torch.cat([pooled.expand(-1, -1, k), x], 1))  # [BG, C, K]
        return x.max(2).values.reshape(b, g, self.embed_dim)


@MODELS.register_module()
class CentrePositionEmbedding(nn.Module):
    """``centres [B, G, 3]`` -> ``[B, G, embed_dim]``: Linear 3-128, GELU, Linear 128-``embed_dim``."""

    def __init__(self, embed_dim: int = 384, hidden: int = 128):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(3, hidden), nn.GELU(), nn.Linear(hidden, embed_dim))

    def forward(self, centres: torch.Tensor) -> torch.Tensor:
        return self.mlp(centres)
