"""CenterNet / CenterPoint heatmap targets: the Gaussian radius of a box and the splat of a Gaussian peak."""
from typing import Tuple, Union

import numpy as np
import torch

Number = Union[float, torch.Tensor]


def gaussian_radius(height: Number, width: Number, min_overlap: float = 0.5) -> Number:
    """Radius (in heatmap cells) of the peak of a box ``height x width`` cells (CornerNet's rule, as CenterPoint
    and mmdet3d use it): the smallest of three radii such that a box whose corners moved that far still has IoU
    >= ``min_overlap`` with the original.

    Kept as those implementations have it: each radius is ``(b + sqrt(b^2 - 4ac)) / 2`` instead of the root of
    ``a r^2 - b r + c = 0``, ``(b - sqrt(...)) / (2a)``; the published CenterPoint models were trained with these
    radii (``min_overlap`` 0.1 there, then ``max(min_radius, int(r))``), so targets match them only this way.
    Works elementwise on tensors.
    """
    sqrt = torch.sqrt if isinstance(height, torch.Tensor) or isinstance(width, torch.Tensor) else np.sqrt
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    if isinstance(r1, torch.Tensor):
        return torch.minimum(torch.minimum(r1, r2), r3)
    return min(r1, r2, r3)


def gaussian_2d(radius: int, dtype=torch.float32) -> torch.Tensor:
    """``[2r + 1, 2r + 1]`` Gaussian with sigma = (2r + 1) / 6 and 1 at the centre; values below float32's
    machine epsilon times the peak are set to 0 (as CenterNet's ``gaussian2D``)."""
    if radius < 0:
        raise ValueError(f"gaussian_2d: radius must be >= 0, got {radius}")
    sigma = (2 * radius + 1) / 6
    r = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * sigma * sigma))
    g[g < np.finfo(np.float32).eps * g.max()] = 0
    return g.to(dtype)


def draw_gaussian(heatmap: torch.Tensor, center: Tuple[int, int], radius: int, k: float = 1.0) -> torch.Tensor:
    """Splat ``k * gaussian_2d(radius)`` centred on cell ``center = (x, y)`` into ``heatmap [H, W]`` by
    elementwise max, in place, clipped at the borders (a centre outside the map draws only its overlap).
    Returns ``heatmap``."""
    if heatmap.dim() != 2:
        raise ValueError(f"draw_gaussian: heatmap must be [H, W], got {tuple(heatmap.shape)}")
    radius = int(radius)
    x, y = int(center[0]), int(center[1])
    h, w = heatmap.shape
    left, right = min(x, radius), min(w - x, radius + 1)
    top, bottom = min(y, radius), min(h - y, radius + 1)
    if left + right <= 0 or top + bottom <= 0:
        return heatmap
    g = gaussian_2d(radius, heatmap.dtype).to(heatmap.device) * k
    region = heatmap[y - top:y + bottom, x - left:x + right]
    patch = g[radius - top:radius + bottom, radius - left:radius + right]
    torch.maximum(region, patch, out=region)
    return heatmap
