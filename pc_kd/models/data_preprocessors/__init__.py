from .det_preprocessor import DetDataPreprocessor
from .image_preprocessor import ImageSegDataPreprocessor
from .point_preprocessor import PointDataPreprocessor

__all__ = ["DetDataPreprocessor", "ImageSegDataPreprocessor", "PointDataPreprocessor"]
