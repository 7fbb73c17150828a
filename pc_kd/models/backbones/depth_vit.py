"""A tiny ViT over single-channel (depth) images: the 2D teacher of masked point modelling when no pretrained ViT
weights are at hand (pretrained without labels by :func:`mae_loss`), and deep prompt tuning of a frozen ViT's blocks
(ACT's prompted 2D transformer)."""
import torch
import torch.nn.functional as F
from torch import nn

from pc_kd.registry import MODELS

from .point_transformer import TransformerBlock


@MODELS.register_module()
class DepthViT(nn.Module):
    """``images [B, 1, S, S]`` -> patch tokens ``[B, (S / patch)^2, dim]`` (a strided conv, learned positions), a CLS
    token in front, ``depth`` pre-norm :class:`TransformerBlock` s and a final LayerNorm. :meth:`forward` returns the
    CLS feature ``[B, dim]`` after the norm (the feature ReCon regresses)."""

    def __init__(self, image_size: int = 32, patch: int = 4, dim: int = 64, depth: int = 4, num_heads: int = 4):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"DepthViT: image_size {image_size} is not a multiple of patch {patch}")
        self.image_size, self.patch, self.dim = image_size, patch, dim
        self.num_patches = (image_size // patch) ** 2
        self.patch_embed = nn.Conv2d(1, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, self.num_patches + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """``[B, 1 + P, dim]``: CLS and patch tokens with their positions added."""
        if images.dim() != 4 or images.shape[1:] != (1, self.image_size, self.image_size):
            raise ValueError(f"DepthViT: images must be [B, 1, {self.image_size}, {self.image_size}], got "
                             f"{tuple(images.shape)}")
        x = self.patch_embed(images).flatten(2).transpose(1, 2)
        return torch.cat([self.cls_token.expand(len(x), -1, -1), x], 1) + self.pos

    def encode(self, tokens: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode(self.tokens(images))[:, 0]


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """``[B, 1, S, S]`` -> ``[B, (S / patch)^2, patch^2]`` in the patch embedding's row-major order."""
    b, _, s, _ = images.shape
    n = s // patch
    return images.reshape(b, n, patch, n, patch).permute(0, 1, 3, 2, 4).reshape(b, n * n, patch * patch)


class DepthMAEDecoder(nn.Module):
    """MAE's light decoder for :class:`DepthViT`: mask tokens at the hidden patches, one block, a linear head to
    each patch's pixels."""

    def __init__(self, vit: DepthViT, num_heads: int = 4):
        super().__init__()
        self.mask_token = nn.Parameter(torch.zeros(1, 1, vit.dim))
        self.pos = nn.Parameter(torch.randn(1, vit.num_patches, vit.dim) * 0.02)
        self.block = TransformerBlock(vit.dim, num_heads)
        self.head = nn.Linear(vit.dim, vit.patch ** 2)


def mae_loss(vit: DepthViT, decoder: DepthMAEDecoder, images: torch.Tensor, mask_ratio: float = 0.75,
             generator: torch.Generator = None) -> torch.Tensor:
    """MAE (He et al. 2022) on ``images [B, 1, S, S]``: the encoder sees CLS and a random ``1 - mask_ratio`` of the
    patches, the decoder predicts the hidden patches' pixels; the mean squared error over the hidden patches. No
    label is read."""
    tokens = vit.tokens(images)
    b, p = len(images), vit.num_patches
    hidden = random_mask(b, p, mask_ratio, generator, images.device)
    visible = tokens[:, 1:][~hidden].reshape(b, -1, vit.dim)
    encoded = vit.encode(torch.cat([tokens[:, :1], visible], 1))[:, 1:]
    full = decoder.mask_token.expand(b, p, -1).clone()
    full[~hidden] = encoded.reshape(-1, vit.dim)
    pred = decoder.head(decoder.block(full + decoder.pos))
    return F.mse_loss(pred[hidden], patchify(images, vit.patch)[hidden])


def random_mask(batch: int, tokens: int, ratio: float, generator: torch.Generator = None,
                device=None) -> torch.Tensor:
    """``[batch, tokens]`` bool, True = masked: exactly ``round(ratio * tokens)`` random tokens per row (MAE's and
    Point-MAE's random masking)."""
    if not 0 <= ratio < 1:
        raise ValueError(f"random_mask: ratio must be in [0, 1), got {ratio}")
    num = int(round(ratio * tokens))
    order = torch.rand(batch, tokens, generator=generator).argsort(1).to(device)
    return order < num if num else torch.zeros(batch, tokens, dtype=torch.bool, device=device)


def vit_width(vit: nn.Module) -> int:
    """The token width of a ViT: ``dim`` (:class:`DepthViT`) or ``embed_dim`` (timm's ``VisionTransformer``)."""
    width = getattr(vit, "dim", None) or getattr(vit, "embed_dim", None)
    if not (hasattr(vit, "blocks") and hasattr(vit, "norm") and width):
        raise TypeError(f"{type(vit).__name__} is not a ViT with .blocks, .norm and .dim / .embed_dim (a DepthViT or "
                        f"a timm VisionTransformer)")
    return int(width)


class PromptedBlocks(nn.Module):
    """Deep prompt tuning (Jia et al. 2022) of the blocks and final norm of a FROZEN ViT (a :class:`DepthViT`, or a
    timm ``VisionTransformer`` built with the user's weights), as ACT runs its 2D transformer: before each block,
    ``num_prompts`` fresh learnable prompt tokens (plus learnable prompt positions) replace the previous block's
    prompt outputs; the prompts are dropped after the last block.
    ``forward(tokens [B, L, dim]) -> [B, L, dim]``. The ViT's parameters are frozen here (``requires_grad=False``)
    and the ViT is kept in eval mode; only the prompts learn."""

    def __init__(self, vit: DepthViT, num_prompts: int = 8, dropout: float = 0.1):
        super().__init__()
        self.vit, width = vit, vit_width(vit)
        for p in vit.parameters():
            p.requires_grad_(False)
        depth = len(vit.blocks)
        self.prompts = nn.Parameter(torch.randn(depth, num_prompts, width) * 0.02)
        self.prompt_pos = nn.Parameter(torch.randn(depth, num_prompts, width) * 0.02)
        self.dropout = nn.Dropout(dropout)

    def train(self, mode: bool = True):
        super().train(mode)
        self.vit.eval()
        return self

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        b, n = len(tokens), self.prompts.shape[1]
        for block, prompt, pos in zip(self.vit.blocks, self.prompts, self.prompt_pos):
            x = torch.cat([self.dropout(prompt + pos).expand(b, -1, -1), tokens], 1)
            tokens = block(x)[:, n:]
        return self.vit.norm(tokens)

