"""Pinhole projection of points into posed views (OpenCV camera, pixel centres at +0.5)."""
from typing import NamedTuple, Tuple

import torch


class ProjectedPoints(NamedTuple):
    """Result of :func:`project_points`.

    uv: ``[V, N, 2]`` pixel coordinates (u along the width, v along the height); the centre of pixel (0, 0)
        is at (0.5, 0.5). Undefined (inf/nan-free but meaningless) where ``depth <= 0``.
    depth: ``[V, N]`` z of each point in each camera frame (metres).
    valid: ``[V, N]`` bool: in front of the camera (depth > eps) and inside the image (0 <= u < W, 0 <= v < H).
    """

    uv: torch.Tensor
    depth: torch.Tensor
    valid: torch.Tensor


def project_points(points: torch.Tensor, lidar2img: torch.Tensor, image_hw: Tuple[int, int],
                   eps: float = 1e-5) -> ProjectedPoints:
    """Project ``points [N, 3]`` (metres, point frame) with ``lidar2img [V, 4, 4]`` into ``image_hw = (H, W)``.

    ``[u*z, v*z, z, 1] = lidar2img @ [x, y, z, 1]``; ``uv = (u*z, v*z) / z`` for z > eps.
    """
    if points.ndim != 2 or points.shape[-1] != 3:
        raise ValueError(f"project_points: points must be [N, 3], got {tuple(points.shape)}")
    if lidar2img.ndim != 3 or lidar2img.shape[-2:] != (4, 4):
        raise ValueError(f"project_points: lidar2img must be [V, 4, 4], got {tuple(lidar2img.shape)}")
    if not torch.isfinite(lidar2img).all():
        raise ValueError("project_points: lidar2img has NaN or inf entries")
    h, w = image_hw
    mat = lidar2img.to(points.dtype)
    cam = torch.einsum("vij,nj->vni", mat[:, :3, :3], points) + mat[:, None, :3, 3]
    depth = cam[..., 2]
    in_front = depth > eps
    uv = cam[..., :2] / torch.where(in_front, depth, torch.ones_like(depth))[..., None]
    valid = in_front & (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)
    return ProjectedPoints(uv, depth, valid)
