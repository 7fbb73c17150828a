from .point_groups import farthest_point_sample, group_neighbourhoods, knn_indices

__all__ = ["farthest_point_sample", "group_neighbourhoods", "knn_indices"]
