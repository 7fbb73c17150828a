from .image_segmentor import ImageSegmentor
from .sparse_segmentor import SparseSegmentor

__all__ = ["ImageSegmentor", "SparseSegmentor"]
