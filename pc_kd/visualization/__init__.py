"""Pictures: BEV plots (matplotlib) now; open3d scene renders join them."""
from .bev import label_palette, plot_bev_labels

__all__ = ["label_palette", "plot_bev_labels"]
