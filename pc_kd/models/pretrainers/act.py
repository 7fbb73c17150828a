"""ACT (Dong et al., ICLR 2023): stage I, a Point-BERT-style discrete VAE whose middle is a FROZEN 2D ViT's blocks
with deep prompt tuning, trained to reconstruct the point groups; stage II, a masked point transformer regressing
the frozen stage-I latents of the hidden groups with a negative-cosine loss ("dVAE-free": continuous latents, not
token ids)."""
import math
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from pc_kd.models.backbones.depth_vit import PromptedBlocks, random_mask, vit_width
from pc_kd.models.backbones.point_tokens import CentrePositionEmbedding
from pc_kd.models.backbones.point_transformer import TransformerEncoder
from pc_kd.ops.chamfer import chamfer_distance
from pc_kd.ops.point_groups import knn_indices
from pc_kd.registry import MODELS

from .masked_tokens import MaskedTokenDecoder, PointTokenStem, pool_tokens, visible_tokens


class TokenEdgeConv(nn.Module):
    """DGCNN's edge convolution over the tokens of a shape, neighbours by their centres (Point-BERT's dVAE, k = 4):
    ``out_i = max_j LeakyReLU(LN(W [x_j - x_i, x_i]))`` over the ``k`` nearest centres j of centre i (i included).
    ``forward(x [B, G, C_in], centres [B, G, 3]) -> [B, G, C_out]``."""

    def __init__(self, in_dim: int, out_dim: int, k: int = 4):
        super().__init__()
        self.k = k
        self.mlp = nn.Sequential(nn.Linear(2 * in_dim, out_dim), nn.LayerNorm(out_dim), nn.LeakyReLU(0.2))

    def forward(self, x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        b, g, c = x.shape
        idx = knn_indices(centres, centres, min(self.k, g))  # [B, G, k]
        neighbours = torch.gather(x, 1, idx.reshape(b, -1, 1).expand(-1, -1, c)).reshape(b, g, -1, c)
        centre = x[:, :, None].expand_as(neighbours)
        return self.mlp(torch.cat([neighbours - centre, centre], -1)).max(2).values


class FoldingDecoder(nn.Module):
    """Point-BERT's FoldingNet decoder per token: ``latent [N, C]`` -> ``coarse [N, P, 3]`` by an MLP and ``fine
    [N, 4 P, 3]``: each coarse point plus an offset an MLP folds from (latent, coarse point, 2 x 2 grid point in
    +-``grid_scale``)."""

    def __init__(self, dim: int, num_coarse: int = 8, hidden: int = 256, grid_scale: float = 0.05):
        super().__init__()
        self.num_coarse = num_coarse
        self.coarse = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 3 * num_coarse))
        self.fold = nn.Sequential(nn.Linear(dim + 5, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
                                  nn.ReLU(inplace=True), nn.Linear(hidden, 3))
        g = torch.tensor([-grid_scale, grid_scale])
        self.register_buffer("grid", torch.cartesian_prod(g, g), persistent=False)  # [4, 2]

    def forward(self, latent: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        n, c = latent.shape
        coarse = self.coarse(latent).reshape(n, self.num_coarse, 3)
        seeds = coarse[:, :, None].expand(-1, -1, 4, -1).reshape(n, -1, 3)
        grid = self.grid[None, None].expand(n, self.num_coarse, -1, -1).reshape(n, -1, 2)
        fold_in = torch.cat([latent[:, None].expand(-1, seeds.shape[1], -1), seeds, grid], -1)
        return coarse, seeds + self.fold(fold_in)


@MODELS.register_module()
class ACTAutoencoder(nn.Module):
    """ACT stage I over ``neighbourhoods [B, G, K, 3]`` (centred) and ``centres [B, G, 3]``: mini-PointNet tokens ->
    :class:`TokenEdgeConv` -> logits over ``num_codes`` codes -> Gumbel-softmax -> codebook -> Linear to the ViT's
    width plus a centre position MLP -> the FROZEN ``vit``'s blocks and final norm with deep prompts
    (:class:`PromptedBlocks`) -> Linear back -> :class:`TokenEdgeConv` -> Linear = the latents ``[B, G, dim]`` ->
    :class:`FoldingDecoder`. ``vit`` is a :class:`DepthViT` (module or config) or any ViT with ``.blocks``, ``.norm``
    and ``.embed_dim`` (timm's ``VisionTransformer`` with the user's weights; only its blocks and norm are used); its
    weights are loaded from ``vit_checkpoint`` when given. Everything learns except the ViT."""

    def __init__(self, vit, dim: int = 384, num_codes: int = 8192, num_prompts: int = 64, num_coarse: int = 8,
                 edge_k: int = 4, tokenizer_hidden=(128, 256, 512), decoder_hidden: int = 256,
                 vit_checkpoint: str = None):
        super().__init__()
        if isinstance(vit, dict):
            vit = MODELS.build(vit)
        width = vit_width(vit)
        if vit_checkpoint:
            vit.load_state_dict(torch.load(vit_checkpoint, map_location="cpu", weights_only=True))
        self.dim = dim
        self.stem = PointTokenStem(dim, tokenizer_hidden)
        self.encoder = TokenEdgeConv(dim, dim, edge_k)
        self.to_logits = nn.Linear(dim, num_codes)
        self.codebook = nn.Parameter(torch.randn(num_codes, dim) * 0.02)
        self.to_vit, self.vit_pos = nn.Linear(dim, width), CentrePositionEmbedding(width)
        self.vit = PromptedBlocks(vit, num_prompts)
        self.from_vit = nn.Linear(width, dim)
        self.encoder2 = TokenEdgeConv(dim, dim, edge_k)
        self.latent_proj = nn.Linear(dim, dim)  # the last layer has no activation: latents of any sign
        self.decoder = FoldingDecoder(dim, num_coarse, decoder_hidden)

    def latents(self, neighbourhoods: torch.Tensor, centres: torch.Tensor, tau: float = 1.0, hard: bool = False
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(latents [B, G, dim], logits [B, G, num_codes])``; ``hard=True`` takes one sampled code per group (a
        Gumbel sample, not the argmax), as ACT's stage II reads its teacher."""
        tokens = self.stem.tokenizer(neighbourhoods)
        logits = self.to_logits(self.encoder(tokens, centres))
        codes = F.gumbel_softmax(logits, tau=tau, hard=hard, dim=-1) @ self.codebook
        x = self.vit(self.to_vit(codes) + self.vit_pos(centres))
        return self.latent_proj(self.encoder2(self.from_vit(x), centres)), logits

    def loss(self, neighbourhoods: torch.Tensor, centres: torch.Tensor, tau: float = 1.0, kl_weight: float = 0.0
             ) -> Dict[str, torch.Tensor]:
        """``loss_coarse`` + ``loss_fine`` (CD-L1 of each group's coarse and fine reconstruction against its
        points, mean over groups) + ``loss_kl`` (``kl_weight`` times KL(mean code distribution || uniform))."""
        b, g, k, _ = neighbourhoods.shape
        latents, logits = self.latents(neighbourhoods, centres, tau)
        coarse, fine = self.decoder(latents.reshape(b * g, -1))
        target = neighbourhoods.reshape(b * g, k, 3)
        mean_q = logits.softmax(-1).mean((0, 1))
        kl = (mean_q * (mean_q.clamp_min(1e-12).log() + math.log(len(mean_q)))).sum()
        return {"loss_coarse": chamfer_distance(coarse, target, "l1").mean(),
                "loss_fine": chamfer_distance(fine, target, "l1").mean(), "loss_kl": kl_weight * kl}


def act_cosine_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """ACT's stage-II loss: ``(1 / B) sum_b [1 - mean_j cos(pred_bj, target_bj)]`` over ``pred, target [B, M, C]``
    (M hidden groups per shape)."""
    return (1 - F.cosine_similarity(pred, target, dim=-1).mean(1)).mean()


@MODELS.register_module()
class ACTDistiller(nn.Module):
    """ACT stage II: a CLS token and the visible point tokens through a :class:`TransformerEncoder`, Point-MAE's
    decoder with mask tokens and a Linear to the teacher's width on the hidden groups, regressing the frozen
    ``teacher``'s (an :class:`ACTAutoencoder`) hard-sampled latents of those groups (:func:`act_cosine_loss`). The
    teacher is frozen (``requires_grad=False``), kept in eval mode and run under ``no_grad``; ``teacher=None`` builds
    the student alone (a random-init encoder for :meth:`features`)."""

    def __init__(self, teacher=None, dim: int = 384, depth: int = 12, num_heads: int = 6, decoder_depth: int = 2,
                 mask_ratio: float = 0.8, tokenizer_hidden=(128, 256, 512), center_targets: bool = False,
                 teacher_checkpoint: str = None):
        super().__init__()
        if isinstance(teacher, dict):
            teacher = MODELS.build(teacher)
        if teacher is not None and teacher_checkpoint:
            teacher.load_state_dict(torch.load(teacher_checkpoint, map_location="cpu", weights_only=True))
        self.teacher = teacher
        if teacher is not None:
            for p in teacher.parameters():
                p.requires_grad_(False)
        self.mask_ratio, self.center_targets = mask_ratio, center_targets
        self.stem = PointTokenStem(dim, tokenizer_hidden)
        self.cls_token, self.cls_pos = nn.Parameter(torch.zeros(1, 1, dim)), nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.cls_pos, std=0.02)
        self.encoder = TransformerEncoder(dim, depth, num_heads)
        self.decoder = MaskedTokenDecoder(dim, decoder_depth, num_heads, teacher.dim if teacher is not None else dim)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def encode(self, neighbourhoods: torch.Tensor, centres: torch.Tensor, mask: torch.Tensor = None) -> torch.Tensor:
        """``[B, 1 + V, dim]``: the CLS output and the visible groups' outputs."""
        tokens, pos = self.stem(neighbourhoods, centres)
        if mask is not None:
            tokens, pos = visible_tokens(tokens, mask), visible_tokens(pos, mask)
        b = len(tokens)
        return self.encoder(torch.cat([self.cls_token.expand(b, -1, -1), tokens], 1),
                            torch.cat([self.cls_pos.expand(b, -1, -1), pos], 1))

    def loss(self, neighbourhoods: torch.Tensor, centres: torch.Tensor, generator: torch.Generator = None
             ) -> Dict[str, torch.Tensor]:
        if self.teacher is None:
            raise RuntimeError("ACTDistiller.loss: no teacher (build it with teacher=ACTAutoencoder config)")
        b, g = neighbourhoods.shape[:2]
        mask = random_mask(b, g, self.mask_ratio, generator, neighbourhoods.device)
        with torch.no_grad():
            target = self.teacher.latents(neighbourhoods, centres, tau=1.0, hard=True)[0]
            if self.center_targets:  # remove the component every group's latent shares (mean over the batch)
                target = target - target.mean((0, 1), keepdim=True)
        pred = self.decoder(self.encode(neighbourhoods, centres, mask)[:, 1:], centres, mask)
        return {"loss_cos": act_cosine_loss(pred, target[mask].reshape(b, -1, target.shape[-1]))}

    @torch.no_grad()
    def features(self, neighbourhoods: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """``[B, 2 dim]``: the CLS output and max + mean of the group outputs, every group visible."""
        x = self.encode(neighbourhoods, centres)
        return torch.cat([x[:, 0], pool_tokens(x[:, 1:])], 1)
