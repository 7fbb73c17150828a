"""Heads: semantic segmentation, projection connectors, clustering for unsupervised segmentation;
``pc_kd.heads.det``: BEV detection (CenterPoint head, targets, decoding)."""
from . import det  # noqa: F401  (registers CenterHead)
from .clustering import assign_clusters, kmeans, minibatch_kmeans, segment_fill, segment_pool, vote
from .projection import PointProjection
from .seg_head import SegHead

__all__ = ["assign_clusters", "kmeans", "minibatch_kmeans", "segment_fill", "segment_pool", "vote", "PointProjection",
           "SegHead"]
