"""2D part predictions and the 3D knowledge units made of them (PartDistill)."""
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch


@dataclass
class PartBoxes:
    """One view's 2D part predictions: ``boxes [K, 4]`` (x0, y0, x1, y1 pixels; pixel (0, 0) covers [0, 1)^2),
    ``labels [K]`` int64 part ids of the shape's category, ``scores [K]`` confidences in (0, 1]; ``correct [K]``
    bool only where the truth is known (a synthetic predictor), else None."""
    boxes: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor
    correct: Optional[torch.Tensor] = None


class PartPredictionTeacher(ABC):
    """A 2D part predictor (a GLIP-like detector prompted with part names, or a segmenter giving boxes):
    ``predict(views)`` -> one :class:`PartBoxes` per view of a shape. Subclass it to plug a real detector in;
    ``views`` is whatever the caller renders (pc_kd's synthetic shapes pass ``ShapeViews``)."""

    @abstractmethod
    def predict(self, views) -> List[PartBoxes]:
        """One :class:`PartBoxes` per view."""


@dataclass
class KnowledgeUnits:
    """A shape's knowledge units: unit k = (``labels[k]``, the points ``points[k]`` (int64 indices) visible in
    ``view[k]`` inside its box, ``scores[k]``); ``correct [K]`` bool where known, else None."""
    points: List[torch.Tensor]
    labels: torch.Tensor
    scores: torch.Tensor
    view: torch.Tensor
    correct: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return len(self.points)

    def score_matrix(self, num_points: int, scores: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``[N, K]`` float: ``s_ik`` = the unit's score (``scores`` or its own) on its points, 0 elsewhere."""
        return unit_score_matrix(num_points, self.points, self.scores if scores is None else scores)


def unit_score_matrix(num_points: int, unit_points: Sequence, scores: Sequence[float]) -> torch.Tensor:
    """``[N, K]`` float: ``s_ik = scores[k]`` on unit k's points (``unit_points[k]``, int64 indices as a tensor or
    an array), 0 elsewhere."""
    out = torch.zeros(num_points, len(unit_points))
    for k, idx in enumerate(unit_points):
        out[torch.as_tensor(idx, dtype=torch.long), k] = float(scores[k])
    return out
