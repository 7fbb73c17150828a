"""Point z-buffer: splat projected points into an image, keeping the nearest one per pixel."""
from typing import NamedTuple, Tuple, Union

import torch


class ZBuffer(NamedTuple):
    """depth: ``[H, W]`` nearest depth per pixel (inf where empty); index: ``[H, W]`` int64 winning point
    (the highest index among equal depths), -1 where empty."""

    depth: torch.Tensor
    index: torch.Tensor


def splat_zbuffer(uv: torch.Tensor, depth: torch.Tensor, image_hw: Tuple[int, int],
                  radius: Union[int, torch.Tensor] = 0, valid: torch.Tensor = None) -> ZBuffer:
    """Render points as squares of ``(2 r + 1)^2`` pixels into a z-buffer.

    Args:
        uv: ``[N, 2]`` pixel coordinates (pixel (0, 0) covers [0, 1) x [0, 1)).
        depth: ``[N]`` camera-frame z (metres); points with depth <= 0 are ignored.
        image_hw: ``(H, W)``.
        radius: splat half-size in pixels, an int or a ``[N]`` int tensor (per-point footprint).
        valid: optional ``[N]`` bool; False points are ignored.
    """
    h, w = image_hw
    n = depth.shape[0]
    keep = depth > 0 if valid is None else valid & (depth > 0)
    radius = torch.as_tensor(radius, device=depth.device).long().expand(n)
    pix = torch.floor(uv).long()
    zbuf = torch.full((h * w,), float("inf"), dtype=depth.dtype, device=depth.device)
    rmax = int(radius[keep].max()) if keep.any() else 0
    offsets = [(dx, dy) for dy in range(-rmax, rmax + 1) for dx in range(-rmax, rmax + 1)]
    targets = []
    for dx, dy in offsets:
        px, py = pix[:, 0] + dx, pix[:, 1] + dy
        m = keep & (radius >= max(abs(dx), abs(dy))) & (px >= 0) & (px < w) & (py >= 0) & (py < h)
        lin = (py * w + px)[m]
        src = torch.nonzero(m).squeeze(1)
        zbuf.scatter_reduce_(0, lin, depth[m], reduce="amin")
        targets.append((lin, src))
    index = torch.full((h * w,), -1, dtype=torch.long, device=depth.device)
    for lin, src in targets:
        win = depth[src] == zbuf[lin]
        index.scatter_reduce_(0, lin[win], src[win], reduce="amax")
    return ZBuffer(zbuf.view(h, w), index.view(h, w))
