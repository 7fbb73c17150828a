from .point_distiller import PointFeatureDistiller
from .superpoint_clustering import SuperPointClustering

__all__ = ["PointFeatureDistiller", "SuperPointClustering"]
