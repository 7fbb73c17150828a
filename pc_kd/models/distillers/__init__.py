from .bev_distiller import BEVDistiller
from .point_distiller import PointFeatureDistiller
from .superpoint_clustering import SuperPointClustering

__all__ = ["BEVDistiller", "PointFeatureDistiller", "SuperPointClustering"]
