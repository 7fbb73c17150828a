"""ReCon's point transformer (Qi et al., ICML 2023): local tokens (the visible point groups) and a few global
queries in two streams. The locals attend to each other only; the globals attend to the locals only, through a
stop-gradient in pretraining, so the global queries' losses (image / text feature regression) cannot shape the
local stream and the local reconstruction loss cannot shape the global one."""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn

from pc_kd.registry import MODELS


class TokenMLP(nn.Sequential):
    """Linear ``dim -> hidden``, GELU, Linear ``hidden -> dim``."""

    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))


class TokenAttention(nn.Module):
    """Multi-head attention of ``queries [B, Q, C]`` over ``context [B, L, C]`` (self-attention when they are the
    same tensor): separate query and key/value projections without bias, scaled dot product, an output projection."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"TokenAttention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.kv = nn.Linear(dim, 2 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, queries: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, q, c = queries.shape
        h = self.num_heads
        query = self.q(queries).reshape(b, q, h, c // h).transpose(1, 2)
        key, value = self.kv(context).reshape(b, context.shape[1], 2, h, c // h).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(query, key, value)  # [B, h, Q, C / h]
        return self.proj(out.transpose(1, 2).reshape(b, q, c))


class ReConBlock(nn.Module):
    """One ReCon block, written as ReCon's code has it (the residual is added to the NORMALISED stream):

    - locals ``v [B, L, C]``: ``v = LN1(v); v = v + SA(v); v = LN2(v); v = v + MLP(v)``;
    - globals ``g [B, Q, C]``: ``g = LN1g(g); g = g + CrossAttn(g, sg(LN1(v))); g = LN2g(g); g = g + MLPg(g)``,
      ``sg`` the stop-gradient (``stop_gradient=False``: none, as in fine-tuning).

    The globals never attend to each other and the locals never see the globals."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, stop_gradient: bool = True):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.stop_gradient = stop_gradient
        self.norm1, self.attn, self.norm2, self.mlp = (nn.LayerNorm(dim), TokenAttention(dim, num_heads),
                                                       nn.LayerNorm(dim), TokenMLP(dim, hidden))
        self.norm1_global, self.attn_global = nn.LayerNorm(dim), TokenAttention(dim, num_heads)
        self.norm2_global, self.mlp_global = nn.LayerNorm(dim), TokenMLP(dim, hidden)

    def forward(self, globals_: torch.Tensor, locals_: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        v = self.norm1(locals_)
        seen = v.detach() if self.stop_gradient else v
        g = self.norm1_global(globals_)
        g = g + self.attn_global(g, seen)
        v = v + self.attn(v, v)
        g = self.norm2_global(g)
        v = self.norm2(v)
        return g + self.mlp_global(g), v + self.mlp(v)


@MODELS.register_module()
class ReConEncoder(nn.Module):
    """``depth`` :class:`ReConBlock` s over ``globals [B, Q, C]`` and ``locals [B, L, C]``, each block's input
    plus its positions (``global_pos``, ``local_pos``, as ReCon adds them before every block), then one LayerNorm
    shared by both streams (the only parameters they share). Returns ``(globals, locals)``, same shapes."""

    def __init__(self, dim: int = 384, depth: int = 12, num_heads: int = 6, mlp_ratio: float = 4.0,
                 stop_gradient: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(ReConBlock(dim, num_heads, mlp_ratio, stop_gradient) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def forward(self, globals_: torch.Tensor, locals_: torch.Tensor, global_pos: torch.Tensor,
                local_pos: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        for block in self.blocks:
            globals_, locals_ = block(globals_ + global_pos, locals_ + local_pos)
        return self.norm(globals_), self.norm(locals_)


class TransformerBlock(nn.Module):
    """The standard pre-norm ViT / Point-MAE block over ``x [B, L, C]``: ``x = x + SA(LN1(x)); x = x + MLP(LN2(x))``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), TokenAttention(dim, num_heads)
        self.norm2, self.mlp = nn.LayerNorm(dim), TokenMLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.attn(y, y)
        return x + self.mlp(self.norm2(x))


@MODELS.register_module()
class TransformerEncoder(nn.Module):
    """``depth`` :class:`TransformerBlock` s over ``tokens [B, L, C]``, the positions ``pos [B, L, C]`` added before
    every block (Point-MAE's ``TransformerEncoder``), then a LayerNorm (``final_norm``)."""

    def __init__(self, dim: int = 384, depth: int = 12, num_heads: int = 6, mlp_ratio: float = 4.0,
                 final_norm: bool = True):
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim) if final_norm else nn.Identity()

    def forward(self, tokens: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens + pos)
        return self.norm(tokens)
