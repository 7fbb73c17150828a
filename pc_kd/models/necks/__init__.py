"""Necks between BEV backbones and heads: SECOND's FPN and the camera / LiDAR fuser."""
from .necks import ConvFuser, SECONDFPN

__all__ = ["ConvFuser", "SECONDFPN"]
