from .point_preprocessor import PointDataPreprocessor

__all__ = ["PointDataPreprocessor"]
