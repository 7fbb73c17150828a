"""Point segments drawn into camera images: which segment each pixel sees (a point z-buffer, nearest point wins),
and the pseudo-label images made from them (each pixel of a segment takes the segment's cluster)."""
from typing import Tuple

import torch

from .project import project_points
from .zbuffer import splat_zbuffer

__all__ = ["segment_images", "pseudo_label_images"]


def segment_images(points: torch.Tensor, segment: torch.Tensor, lidar2img: torch.Tensor, image_hw: Tuple[int, int],
                   radius: int = 1) -> torch.Tensor:
    """The segment seen at each pixel of each view: ``[V, H, W]`` int64 (-1 where no segment point is nearest).

    ``points [N, 3]`` (metres, the LiDAR frame), ``segment [N]`` int64 (-1: a point of no segment, e.g. ground
    that is not to be drawn; such points still hide what is behind them), ``lidar2img [V, 4, 4]``. Every point
    covers the ``(2 radius + 1)^2`` pixels around its own and the nearest point (camera depth) owns a pixel.
    """
    if segment.shape != points.shape[:1]:
        raise ValueError(f"segment: expected [N] = [{points.shape[0]}] one id per point, got {tuple(segment.shape)}")
    proj = project_points(points, lidar2img, image_hw)
    out = []
    padded = torch.cat([segment.long(), segment.new_full((1,), -1).long()])
    for v in range(lidar2img.shape[0]):
        zbuf = splat_zbuffer(proj.uv[v], proj.depth[v], image_hw, radius, proj.valid[v])
        out.append(padded[zbuf.index])  # index -1 (empty) picks the appended -1
    if not out:
        return torch.full((0, *image_hw), -1, dtype=torch.long)
    return torch.stack(out)


def pseudo_label_images(segment_image: torch.Tensor, cluster_of_segment: torch.Tensor,
                        ignore_index: int = 255) -> torch.Tensor:
    """``segment_image [..., H, W]`` (segment ids, -1: none) -> the cluster of each pixel's segment, same shape,
    int64; pixels of no segment (or of a segment whose cluster is -1) get ``ignore_index``.
    ``cluster_of_segment [S]`` int64 holds the cluster of segment s."""
    if segment_image.numel() and int(segment_image.max()) >= len(cluster_of_segment):
        raise ValueError(f"segment_image: holds segment {int(segment_image.max())} but cluster_of_segment has only "
                         f"{len(cluster_of_segment)} entries")
    lookup = torch.cat([cluster_of_segment.long(), cluster_of_segment.new_full((1,), -1).long()])
    labels = lookup[segment_image.long()]  # -1 -> the appended -1
    return torch.where(labels < 0, torch.full_like(labels, ignore_index), labels)
