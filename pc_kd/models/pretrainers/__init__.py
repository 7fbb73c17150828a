"""Masked point modelling pretrainers that learn from 2D teachers: ReCon (reconstruction + regression of frozen image
and text features by global queries; with those weights at 0 it is Point-MAE) and ACT (a frozen, prompt-tuned 2D ViT
inside a point autoencoder, whose latents a masked student regresses)."""
from .act import ACTAutoencoder, ACTDistiller, act_cosine_loss
from .masked_tokens import MaskedTokenDecoder, PointTokenStem, pool_tokens
from .recon import ReConPretrainer

__all__ = ["ACTAutoencoder", "ACTDistiller", "act_cosine_loss", "MaskedTokenDecoder", "PointTokenStem", "pool_tokens",
           "ReConPretrainer"]
