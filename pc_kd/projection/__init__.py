"""Projection of points into posed views, visibility and back-projection of 2D features (public functions)."""
from .backproject import backproject_features
from .fusion import MissingFrameError, fuse_dataset, fuse_scene, load_frames
from .part_units import box_units
from .project import ProjectedPoints, project_points
from .segment_masks import pseudo_label_images, segment_images
from .visibility import zbuffer_visibility
from .zbuffer import ZBuffer, splat_zbuffer

__all__ = ["backproject_features", "box_units", "MissingFrameError", "fuse_dataset", "fuse_scene", "load_frames",
           "ProjectedPoints",
           "project_points", "pseudo_label_images", "segment_images", "ZBuffer", "splat_zbuffer", "zbuffer_visibility"]
