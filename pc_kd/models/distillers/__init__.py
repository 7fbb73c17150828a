from .point_distiller import PointFeatureDistiller

__all__ = ["PointFeatureDistiller"]
