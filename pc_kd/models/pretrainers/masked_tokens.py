"""What the masked point modellers share: point tokens with their centre positions, Point-MAE's decoder with mask
tokens, and the pooled feature a linear probe reads."""
import torch
from torch import nn

from pc_kd.models.backbones.point_tokens import CentrePositionEmbedding, MiniPointNetTokenizer
from pc_kd.models.backbones.point_transformer import TransformerEncoder


class PointTokenStem(nn.Module):
    """``neighbourhoods [B, G, K, 3]`` and ``centres [B, G, 3]`` -> ``(tokens [B, G, dim], pos [B, G, dim])`` by a
    :class:`MiniPointNetTokenizer` and a :class:`CentrePositionEmbedding`."""

    def __init__(self, dim: int, tokenizer_hidden=(128, 256, 512)):
        super().__init__()
        self.tokenizer = MiniPointNetTokenizer(dim, tokenizer_hidden)
        self.pos = CentrePositionEmbedding(dim)

    def forward(self, neighbourhoods: torch.Tensor, centres: torch.Tensor):
        if centres.shape != neighbourhoods.shape[:2] + (3,):
            raise ValueError(f"PointTokenStem: centres must be [B, G, 3] = {tuple(neighbourhoods.shape[:2]) + (3,)} "
                             f"for neighbourhoods {tuple(neighbourhoods.shape)}, got {tuple(centres.shape)}")
        return self.tokenizer(neighbourhoods), self.pos(centres)


class MaskedTokenDecoder(nn.Module):
    """Point-MAE's decoder: the encoded visible tokens followed by one shared mask token per hidden group, the
    positions of their centres added before every block, ``depth`` blocks, a final LayerNorm and a linear head
    (Point-MAE's ``Conv1d(dim, 3 K, 1)``, the same map) on the hidden tokens only.

    ``forward(visible [B, V, dim], centres [B, G, 3], mask [B, G] bool, True = hidden) -> [B, M, out_dim]``, the
    hidden groups in their order in ``centres``; every row of ``mask`` must hide the same number M."""

    def __init__(self, dim: int, depth: int, num_heads: int, out_dim: int):
        super().__init__()
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.pos = CentrePositionEmbedding(dim)
        self.blocks = TransformerEncoder(dim, depth, num_heads)
        self.head = nn.Linear(dim, out_dim)

    def forward(self, visible: torch.Tensor, centres: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, g, _ = centres.shape
        hidden = int(mask[0].sum())
        pos = self.pos(centres)
        pos = torch.cat([pos[~mask].reshape(b, g - hidden, -1), pos[mask].reshape(b, hidden, -1)], 1)
        x = torch.cat([visible, self.mask_token.expand(b, hidden, -1)], 1)
        return self.head(self.blocks(x, pos)[:, g - hidden:])


def pool_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """``[B, L, C]`` -> ``[B, C]``: max plus mean over the tokens (ReCon's SVM feature of the locals)."""
    return tokens.max(1).values + tokens.mean(1)


def visible_tokens(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The rows of ``x [B, G, C]`` where ``mask [B, G]`` is False, as ``[B, V, C]`` (V the same for every row)."""
    return x[~mask].reshape(len(x), -1, x.shape[-1])
