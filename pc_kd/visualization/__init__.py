"""Pictures: BEV plots (matplotlib) and headless open3d renders (optional ``[vis]`` extra)."""
from .bev import label_palette, plot_bev_labels, plot_bev_maps, plot_image_labels
from .det import box_edges_in_image, draw_camera_detections, plot_bev_detections, plot_depth_comparison
from .render import cutaway_mask, label_colors, pca_colors, render_points

__all__ = ["plot_image_labels", "box_edges_in_image", "draw_camera_detections", "plot_bev_detections", "plot_depth_comparison", "label_palette", "plot_bev_labels", "plot_bev_maps",
           "cutaway_mask", "label_colors", "pca_colors", "render_points"]
