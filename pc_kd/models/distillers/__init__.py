from .point_distiller import PointFeatureDistiller
from .superpoint_clustering import ReclusterHook, SuperPointClustering

__all__ = ["PointFeatureDistiller", "ReclusterHook", "SuperPointClustering"]
