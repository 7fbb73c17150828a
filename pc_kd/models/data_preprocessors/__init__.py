from .det_preprocessor import DetDataPreprocessor
from .point_preprocessor import PointDataPreprocessor

__all__ = ["DetDataPreprocessor", "PointDataPreprocessor"]
