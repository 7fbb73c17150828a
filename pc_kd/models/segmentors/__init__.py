from .image_segmentor import ImageSegmentor
from .part_distill import PartDistillSegmentor
from .sparse_segmentor import SparseSegmentor

__all__ = ["ImageSegmentor", "PartDistillSegmentor", "SparseSegmentor"]
