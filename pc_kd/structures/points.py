"""Ragged batches of point clouds: concatenated rows plus cumulative offsets, never padded."""
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch


def offsets_to_batch_index(offset: torch.Tensor) -> torch.Tensor:
    """``offset [B]`` (cumulative counts, ``offset[-1] == N``) -> ``batch_index [N]`` int64."""
    counts = torch.diff(offset, prepend=offset.new_zeros(1))
    return torch.repeat_interleave(torch.arange(len(offset), device=offset.device), counts)


def counts_to_offsets(counts: Sequence[int], device=None) -> torch.Tensor:
    return torch.cumsum(torch.as_tensor(list(counts), dtype=torch.long, device=device), 0)


@dataclass
class PointBatch:
    """B point clouds in one ragged batch.

    Attributes:
        coord: ``[N, 3]`` xyz in metres, in each cloud's point frame, clouds concatenated.
        feat: ``[N, C]`` per-point input features (e.g. rgb in [0, 1], intensity); C may be 0.
        offset: ``[B]`` int64 cumulative point counts; cloud b is rows ``offset[b-1]:offset[b]``.
    """

    coord: torch.Tensor
    feat: torch.Tensor
    offset: torch.Tensor

    def __post_init__(self):
        n = self.coord.shape[0]
        if self.coord.ndim != 2 or self.coord.shape[1] != 3:
            raise ValueError(f"PointBatch.coord must be [N, 3], got {tuple(self.coord.shape)}")
        if self.feat.shape[0] != n:
            raise ValueError(f"PointBatch.feat has {self.feat.shape[0]} rows for {n} points")
        if self.offset.ndim != 1 or (len(self.offset) and int(self.offset[-1]) != n):
            raise ValueError(f"PointBatch.offset must be [B] cumulative counts ending at N={n}, got "
                             f"{self.offset.tolist()}")

    @classmethod
    def from_list(cls, coords: List[torch.Tensor], feats: Optional[List[torch.Tensor]] = None) -> "PointBatch":
        """Concatenate per-cloud ``[N_b, 3]`` coordinates (and ``[N_b, C]`` features)."""
        if not coords:
            raise ValueError("PointBatch.from_list: empty list of clouds")
        coord = torch.cat(coords)
        feat = torch.cat(feats) if feats is not None else coord.new_zeros(coord.shape[0], 0)
        return cls(coord, feat, counts_to_offsets([len(c) for c in coords], coord.device))

    @property
    def batch_size(self) -> int:
        return len(self.offset)

    @property
    def batch_index(self) -> torch.Tensor:
        """``[N]`` int64 cloud index of each point."""
        return offsets_to_batch_index(self.offset)

    @property
    def counts(self) -> torch.Tensor:
        return torch.diff(self.offset, prepend=self.offset.new_zeros(1))

    def split(self, tensor: torch.Tensor) -> List[torch.Tensor]:
        """Split a per-point ``[N, ...]`` tensor into the B clouds."""
        return list(torch.split(tensor, self.counts.tolist()))

    def to(self, device) -> "PointBatch":
        return PointBatch(self.coord.to(device), self.feat.to(device), self.offset.to(device))
