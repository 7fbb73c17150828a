"""Visibility of points in posed views without depth images: a point z-buffer test."""
from typing import Tuple

import torch

from .project import project_points
from .zbuffer import splat_zbuffer


def zbuffer_visibility(points: torch.Tensor, lidar2img: torch.Tensor, image_hw: Tuple[int, int], *,
                       radius_px: int = 2, depth_tol: float = 0.05) -> torch.Tensor:
    """``[V, N]`` bool: point n is visible in view v when it projects inside the image and no other point
    splatted (as a ``(2 radius_px + 1)^2`` square) onto its pixel lies in front of it by more than
    ``depth_tol`` x its depth.

    Args:
        points: ``[N, 3]`` xyz (metres) in the frame ``lidar2img`` maps from.
        lidar2img: ``[V, 4, 4]`` point frame -> image (see pc_kd.structures.cameras).
        image_hw: ``(H, W)``.
        radius_px: splat half-size; pick it so that neighbouring points' splats touch at the scene's depth
            (surface sampling spacing x focal length / depth).
        depth_tol: relative depth tolerance (0.05 = 5 %).
    """
    proj = project_points(points, lidar2img, image_hw)
    visible = torch.zeros_like(proj.valid)
    h, w = image_hw
    for v in range(lidar2img.shape[0]):
        valid = proj.valid[v]
        zbuf = splat_zbuffer(proj.uv[v], proj.depth[v], image_hw, radius_px, valid=valid).depth.reshape(-1)
        pix = torch.floor(proj.uv[v]).long()
        lin = (pix[:, 1].clamp(0, h - 1) * w + pix[:, 0].clamp(0, w - 1))
        visible[v] = valid & (proj.depth[v] <= zbuf[lin] * (1 + depth_tol))
    return visible
