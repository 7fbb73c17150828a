"""A motion cue from two LiDAR sweeps: block matching of the key sweep's above-ground BEV occupancy against the
earlier sweep's, per BEV cell. No parameters, no gradient."""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pc_kd.registry import MODELS


@MODELS.register_module()
class SweepMotion(nn.Module):
    """Points of the key sweep and an earlier sweep -> ``[B, 3, H, W]``: a velocity estimate ``(vx, vy)`` (m/s,
    LiDAR frame, x along W, y along H) and its match score (0..1) per BEV cell.

    For every cell p and every shift d (cells, ``|dx|, |dy| <= radius``), ``match_d(p)`` is the fraction of the
    key sweep's occupied cells in the ``window x window`` block around p whose cell moved by ``d`` is occupied in
    the earlier sweep (only points higher than ``min_z``: the road is the same in both sweeps and would match at
    d = 0 everywhere). The estimate is the softmax-weighted mean displacement (temperature ``temperature``, a
    penalty of ``shift_penalty`` per cell of shift so that ties go to the smaller one), ``-d * cell / dt``, with
    ``dt`` each sample's mean time lag of the earlier sweep's points. Cells whose block holds no key occupancy,
    and samples without an earlier sweep, get zeros.

    A detector sees two sweeps anyway (e.g. :class:`PillarBEVEncoder` with ``time_lag_edges``), but a CenterPoint
    head trained with an L1 velocity loss learns to compare them only slowly: with 300 iterations its velocity
    output stays near 0 (the L1 median when moving and parked objects cannot be told apart). Given to the head
    beside the neck output (``BEVDetector(motion=...)``), this estimate lets it read motion directly.

    Args:
        point_cloud_range: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` metres, LiDAR frame (the BEV grid).
        cell: ``(dx, dy)`` metres per BEV cell (the head's grid).
        time_lag_edge: points with a time lag (last column, s) below it are the key sweep, the others earlier.
        radius: largest shift in cells (radius * cell / dt is the fastest speed measured).
        window: block size in cells (odd; about an object's length).
        min_z: points at or below this height (LiDAR frame, m) are ignored.
        temperature, shift_penalty: of the soft arg-max over the match scores.
    """

    def __init__(self, point_cloud_range: Sequence[float], cell: Sequence[float], time_lag_edge: float = 0.25,
                 radius: int = 7, window: int = 11, min_z: float = -1.5, temperature: float = 0.02,
                 shift_penalty: float = 0.01):
        super().__init__()
        if not (isinstance(window, int) and window >= 1 and window % 2 == 1):
            raise ValueError(f"SweepMotion: window is {window!r}, expected an odd int >= 1")
        if not (isinstance(radius, int) and radius >= 0):
            raise ValueError(f"SweepMotion: radius is {radius!r}, expected an int >= 0")
        self.out_channels = 3
        self.radius, self.window, self.time_lag_edge, self.min_z = radius, window, float(time_lag_edge), float(min_z)
        self.temperature, self.shift_penalty = float(temperature), float(shift_penalty)
        x0, y0, _, x1, y1, _ = (float(v) for v in point_cloud_range)
        self.origin, self.cell = (x0, y0), (float(cell[0]), float(cell[1]))
        self.grid_hw = (round((y1 - y0) / self.cell[1]), round((x1 - x0) / self.cell[0]))
        shifts = [(dx, dy) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
        self.register_buffer("shifts", torch.tensor(shifts, dtype=torch.float32), persistent=False)

    def occupancy(self, points: List[torch.Tensor]):
        """``[B, 2, H, W]`` occupancy (key, earlier) of the points above ``min_z``, and ``dt [B]`` (s, 0 when a
        sample has no earlier sweep)."""
        H, W = self.grid_hw
        device = points[0].device if points else torch.device("cpu")
        occ = torch.zeros(len(points), 2 * H * W + 1, device=device)  # the last slot takes the points left out
        dt = torch.zeros(len(points), device=device)
        for b, pts in enumerate(points):
            if pts.ndim != 2 or pts.shape[1] < 4:
                raise ValueError(f"SweepMotion: sample {b} has points {tuple(pts.shape)}, expected [N, >= 4] with "
                                 "the time lag (s) last (load the sweeps with LoadPointsFromMultiSweeps)")
            ix = torch.floor((pts[:, 0] - self.origin[0]) / self.cell[0])
            iy = torch.floor((pts[:, 1] - self.origin[1]) / self.cell[1])
            earlier = pts[:, -1] >= self.time_lag_edge
            keep = (pts[:, 2] > self.min_z) & (ix >= 0) & (ix < W) & (iy >= 0) & (iy < H)
            slot = torch.where(keep, (earlier * (H * W) + iy * W + ix).long(), 2 * H * W)
            occ[b, slot] = 1.0
            n_earlier = earlier.sum()
            if n_earlier > 0:
                dt[b] = (pts[:, -1] * earlier).sum() / n_earlier
        return occ[:, :-1].view(-1, 2, H, W), dt

    def _box_sum(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over the ``window x window`` block around every cell (zeros outside the grid), by cumulative sums."""
        h = self.window // 2
        H, W = x.shape[-2:]
        c = F.pad(x, (h + 1, h, h + 1, h)).cumsum(-2)
        c = c[..., 2 * h + 1:, :] - c[..., :H, :]
        c = c.cumsum(-1)
        return c[..., 2 * h + 1:] - c[..., :W]

    @torch.no_grad()
    def forward(self, points: List[torch.Tensor]) -> torch.Tensor:
        H, W = self.grid_hw
        occ, dt = self.occupancy(points)
        key, earlier = occ[:, :1], occ[:, 1:]
        r = self.radius
        # [B, S, H, W]: the earlier occupancy at p + d, shifts in the order of self.shifts (dy outer, dx inner)
        moved = F.unfold(earlier, 2 * r + 1, padding=r).view(len(occ), -1, H, W)
        mass = self._box_sum(key)
        match = self._box_sum(key * moved) / mass.clamp_min(0.5)
        score = match - self.shift_penalty * self.shifts.norm(dim=1).view(1, -1, 1, 1)
        weight = torch.softmax(score / self.temperature, 1)
        cells = torch.einsum("bshw,sc->bchw", weight, self.shifts.to(weight.dtype))
        scale = torch.tensor(self.cell, dtype=occ.dtype, device=occ.device).view(1, 2, 1, 1)
        velocity = -cells * scale / dt.clamp_min(1e-6).view(-1, 1, 1, 1)
        valid = ((mass > 0) & (dt > 0).view(-1, 1, 1, 1)).to(occ.dtype)
        return torch.cat([velocity, match.amax(1, keepdim=True)], 1) * valid
