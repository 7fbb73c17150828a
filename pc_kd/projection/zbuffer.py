"""Point z-buffer: splat projected points into an image, keeping the nearest one per pixel.

CPU tensors go through a numba loop over the points (each point visits only its own square); other devices
use a vectorised PyTorch version that makes one pass per square offset. Both give the same result.
"""
from typing import NamedTuple, Tuple, Union

import numba
import numpy as np
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
    if depth.device.type == "cpu":
        zbuf, index = _splat_numba(uv.double().numpy(), depth.double().numpy(), keep.numpy(),
                                   np.ascontiguousarray(radius.numpy()), h, w)
        return ZBuffer(torch.from_numpy(zbuf).to(depth.dtype).view(h, w), torch.from_numpy(index).view(h, w))
    return _splat_torch(uv, depth, keep, radius, h, w)


@numba.njit(cache=True)
def _splat_numba(uv, depth, keep, radius, h, w):
    zbuf = np.full(h * w, np.inf)
    index = np.full(h * w, -1, np.int64)
    for i in range(depth.shape[0]):
        r = radius[i]
        if not keep[i] or not (-r - 1 < uv[i, 0] < w + r + 1 and -r - 1 < uv[i, 1] < h + r + 1):
            continue
        px, py, d = int(np.floor(uv[i, 0])), int(np.floor(uv[i, 1])), depth[i]
        for y in range(max(py - r, 0), min(py + r + 1, h)):
            for x in range(max(px - r, 0), min(px + r + 1, w)):
                k = y * w + x
                if d < zbuf[k] or (d == zbuf[k] and i > index[k]):
                    zbuf[k], index[k] = d, i
    return zbuf, index


def _splat_torch(uv, depth, keep, radius, h, w):
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
