"""Heads: semantic segmentation (more heads: clustering, CenterPoint BEV detection)."""
from .seg_head import SegHead

__all__ = ["SegHead"]
