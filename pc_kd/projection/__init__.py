"""Projection of points into posed views, visibility and back-projection of 2D features (public functions)."""
from .backproject import backproject_features
from .project import ProjectedPoints, project_points
from .visibility import zbuffer_visibility
from .zbuffer import ZBuffer, splat_zbuffer

__all__ = ["backproject_features", "ProjectedPoints", "project_points", "ZBuffer", "splat_zbuffer", "zbuffer_visibility"]
