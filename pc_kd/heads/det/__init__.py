"""BEV detection heads (CenterPoint): heatmap targets and decoding."""
from .gaussian import draw_gaussian, gaussian_2d, gaussian_radius

__all__ = ["draw_gaussian", "gaussian_2d", "gaussian_radius"]
