"""The BEV grid and the assignment of frustum points to its cells (shared by the twin and the kernel)."""
from dataclasses import dataclass
from typing import NamedTuple, Tuple

import torch


@dataclass(frozen=True)
class BEVGrid:
    """A BEV grid over ``x_range`` x ``y_range`` (metres) with ``cell`` = (dx, dy); points with z outside
    ``z_range`` are dropped and z is collapsed. Output ``[B, C, H, W]``: H = (y_max - y_min) / dy rows along
    y, W = (x_max - x_min) / dx columns along x, cell (0, 0) has its minimum corner at (x_min, y_min)."""

    x_range: Tuple[float, float]
    y_range: Tuple[float, float]
    z_range: Tuple[float, float]
    cell: Tuple[float, float]

    def __post_init__(self):
        for name in ("x_range", "y_range", "z_range"):
            lo, hi = getattr(self, name)
            if not hi > lo:
                raise ValueError(f"BEVGrid.{name} must be (min, max) with max > min, got {(lo, hi)}")
        if min(self.cell) <= 0:
            raise ValueError(f"BEVGrid.cell must be positive (dx, dy), got {self.cell}")

    @property
    def shape(self) -> Tuple[int, int]:
        """(H, W)."""
        return (round((self.y_range[1] - self.y_range[0]) / self.cell[1]),
                round((self.x_range[1] - self.x_range[0]) / self.cell[0]))

    @classmethod
    def from_any(cls, grid) -> "BEVGrid":
        """A BEVGrid, a dict of its fields, or a tuple ``(x_range, y_range, z_range, cell)``."""
        if isinstance(grid, cls):
            return grid
        if isinstance(grid, dict):
            return cls(**{k: tuple(v) for k, v in grid.items()})
        x, y, z, cell = grid
        return cls(tuple(x), tuple(y), tuple(z), tuple(cell[:2]))


class CellAssignment(NamedTuple):
    """cell: ``[B, Ncam, D, h, w]`` int64 flat output cell ``b * H * W + iy * W + ix`` of every frustum point,
    ``-1`` outside the grid; num_cells: ``B * H * W``."""

    cell: torch.Tensor
    num_cells: int


def assign_cells(frustum_xyz: torch.Tensor, grid: BEVGrid) -> CellAssignment:
    """Cells of the frustum points ``[B, Ncam, D, h, w, 3]`` (metres, the BEV frame)."""
    H, W = grid.shape
    x, y, z = frustum_xyz.unbind(-1)
    ix = torch.floor((x - grid.x_range[0]) / grid.cell[0]).long()
    iy = torch.floor((y - grid.y_range[0]) / grid.cell[1]).long()
    inside = (ix >= 0) & (ix < W) & (iy >= 0) & (iy < H) & (z >= grid.z_range[0]) & (z < grid.z_range[1])
    b = torch.arange(frustum_xyz.shape[0], device=frustum_xyz.device).view(-1, 1, 1, 1, 1)
    cell = torch.where(inside, (b * H + iy) * W + ix, torch.full_like(ix, -1))
    return CellAssignment(cell, frustum_xyz.shape[0] * H * W)
