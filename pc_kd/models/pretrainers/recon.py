"""ReCon (Qi et al., ICML 2023) pretraining as its released code has it: three global queries (cls, img, text) and
the visible point tokens through :class:`ReConEncoder` blocks (globals cross-attend to the stop-gradient locals),
Point-MAE's masked reconstruction of the hidden neighbourhoods (CD-L2), and a Smooth-L1 regression of a frozen
image feature and a frozen text feature by the img and text queries through linear projections. No InfoNCE. With
``image_weight = text_weight = 0`` the same network is trained by reconstruction alone (Point-MAE's loss)."""
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from pc_kd.models.backbones.depth_vit import random_mask
from pc_kd.models.backbones.point_transformer import ReConEncoder
from pc_kd.ops.chamfer import chamfer_distance
from pc_kd.registry import MODELS

from .masked_tokens import MaskedTokenDecoder, PointTokenStem, pool_tokens, visible_tokens


@MODELS.register_module()
class ReConPretrainer(nn.Module):
    """Inputs: ``neighbourhoods [B, G, K, 3]`` (centred, :func:`pc_kd.ops.group_neighbourhoods`), ``centres
    [B, G, 3]``, and for :meth:`loss` the teachers' features ``image_feats [B, image_dim]`` and ``text_feats
    [B, text_dim]`` (unnormalised, as ReCon regresses them).

    Parameters of the local stream: ``stem``, the blocks' ``norm1 / attn / norm2 / mlp``, ``decoder``; of the global
    stream: ``global_queries``, ``global_pos``, the blocks' ``*_global``, ``image_proj``, ``text_proj``; shared:
    only ``encoder.norm``."""

    def __init__(self, dim: int = 384, depth: int = 12, num_heads: int = 6, decoder_depth: int = 4,
                 group_size: int = 32, mask_ratio: float = 0.6, image_dim: int = 768, text_dim: int = 512,
                 image_weight: float = 1.0, text_weight: float = 1.0, tokenizer_hidden=(128, 256, 512)):
        super().__init__()
        self.group_size, self.mask_ratio = group_size, mask_ratio
        self.image_weight, self.text_weight = image_weight, text_weight
        self.stem = PointTokenStem(dim, tokenizer_hidden)
        self.global_queries = nn.Parameter(torch.zeros(1, 3, dim))  # cls, img, text
        self.global_pos = nn.Parameter(torch.zeros(1, 3, dim))
        nn.init.trunc_normal_(self.global_queries, std=0.02)
        nn.init.trunc_normal_(self.global_pos, std=0.02)
        self.encoder = ReConEncoder(dim, depth, num_heads, stop_gradient=True)
        self.decoder = MaskedTokenDecoder(dim, decoder_depth, num_heads, 3 * group_size)
        self.image_proj, self.text_proj = nn.Linear(dim, image_dim), nn.Linear(dim, text_dim)
        for proj in (self.image_proj, self.text_proj):  # ReCon's init of its projections
            nn.init.normal_(proj.weight, 0.02, 0.01)
            nn.init.zeros_(proj.bias)

    def encode(self, neighbourhoods: torch.Tensor, centres: torch.Tensor, mask: torch.Tensor = None):
        """``(globals [B, 3, dim], locals [B, V, dim])`` over the groups not hidden by ``mask`` (all when None)."""
        tokens, pos = self.stem(neighbourhoods, centres)
        if mask is not None:
            tokens, pos = visible_tokens(tokens, mask), visible_tokens(pos, mask)
        b = len(tokens)
        return self.encoder(self.global_queries.expand(b, -1, -1), tokens, self.global_pos.expand(b, -1, -1), pos)

    def loss(self, neighbourhoods: torch.Tensor, centres: torch.Tensor, image_feats: torch.Tensor = None,
             text_feats: torch.Tensor = None, generator: torch.Generator = None) -> Dict[str, torch.Tensor]:
        """``loss_mdm`` (CD-L2 of the hidden groups' reconstructions, mean over them), ``loss_image`` and
        ``loss_text`` (Smooth-L1, mean over elements) times their weights; a feature may be None when its weight
        is 0."""
        b, g, k, _ = neighbourhoods.shape
        mask = random_mask(b, g, self.mask_ratio, generator, neighbourhoods.device)
        globals_, locals_ = self.encode(neighbourhoods, centres, mask)
        pred = self.decoder(locals_, centres, mask).reshape(-1, self.group_size, 3)
        losses = {"loss_mdm": chamfer_distance(pred, neighbourhoods[mask], "l2").mean()}
        for name, weight, proj, index, target in (("image", self.image_weight, self.image_proj, 1, image_feats),
                                                   ("text", self.text_weight, self.text_proj, 2, text_feats)):
            if weight:
                if target is None or target.shape != (b, proj.out_features):
                    raise ValueError(f"ReConPretrainer.loss: {name}_feats must be [{b}, {proj.out_features}], got "
                                     f"{None if target is None else tuple(target.shape)}")
                losses[f"loss_{name}"] = weight * F.smooth_l1_loss(proj(globals_[:, index]), target)
        return losses

    @torch.no_grad()
    def features(self, neighbourhoods: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """``[B, 2 dim]``: the max of the three global outputs and max + mean of the local outputs, every group
        visible (ReCon's SVM feature)."""
        globals_, locals_ = self.encode(neighbourhoods, centres)
        return torch.cat([globals_.max(1).values, pool_tokens(locals_)], 1)
