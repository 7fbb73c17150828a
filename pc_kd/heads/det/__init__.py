"""BEV detection heads (CenterPoint): heatmap targets, the head, decoding."""
from .center_head import CenterHead, gaussian_focal_loss
from .gaussian import draw_gaussian, gaussian_2d, gaussian_radius

__all__ = ["CenterHead", "gaussian_focal_loss", "draw_gaussian", "gaussian_2d", "gaussian_radius"]
