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


# ------------------------------------------------------------------ backward distillation (PartDistill)
def plateau_reached(epoch_losses: Sequence[float], window: int = 5, tol: float = 0.01) -> bool:
    """Backward distillation's trigger after the epoch whose mean loss is ``epoch_losses[-1]`` (one value per epoch
    so far): at least ``window`` epochs done and the mean of the last ``window`` epoch losses moved by less than
    ``tol`` since the previous epoch's such mean (that of ``epoch_losses[-window - 1:-1]``; 0 before any epoch)."""
    if len(epoch_losses) < window:
        return False
    now = sum(epoch_losses[-window:]) / window
    before = epoch_losses[max(0, len(epoch_losses) - 1 - window):-1]
    previous = sum(before) / len(before) if before else 0.0
    return abs(now - previous) < tol


def rescore_units(labels: torch.Tensor, unit_points: List[torch.Tensor], unit_labels: torch.Tensor) -> torch.Tensor:
    """``[K]`` re-scores ``s'_k = |{i in M_k : y_i = c_k}| / |M_k|``: the share of unit k's points ``M_k``
    (``unit_points[k]``, int64 indices) that the student's snapshot labels ``labels [N]`` give the unit's label
    ``c_k`` (``unit_labels [K]``). An empty unit scores 0."""
    out = torch.zeros(len(unit_points))
    for k, idx in enumerate(unit_points):
        if len(idx):
            out[k] = (labels[idx] == unit_labels[k]).float().mean()
    return out


def balance_rescores(rescores: torch.Tensor, unit_labels: torch.Tensor) -> torch.Tensor:
    """Re-scores with the per-part bias taken out: ``s''_k = s'_k * mean(s') / mean_{l: c_l = c_k}(s'_l)`` over all
    ``K`` units of a dataset (``rescores [K]``, ``unit_labels [K]``). Within a part the order of the units is kept;
    every part's mean re-score becomes the overall mean (a part whose units all score 0 stays 0), so a part whose
    boxes hold many points of other parts (a chair seat seen from the side) is not down-weighted as a whole. A pc_kd
    option, not in PartDistill."""
    out = rescores.clone().float()
    overall = out.mean() if len(out) else out.new_zeros(())
    for c in unit_labels.unique().tolist():
        mask = unit_labels == c
        part_mean = out[mask].mean()
        if part_mean > 0:
            out[mask] = out[mask] * overall / part_mean
    return out


def rescore_shapes(labels: Sequence, unit_points: Sequence[Sequence], unit_labels: Sequence,
                   balance: bool = False) -> List[torch.Tensor]:
    """Backward distillation's re-scores of a whole dataset: per shape ``s`` (student snapshot ``labels[s] [N_s]``,
    its units' ``unit_points[s]`` index arrays and ``unit_labels[s] [K_s]``; tensors or arrays),
    :func:`rescore_units` ``[K_s]``; ``balance``: then :func:`balance_rescores` over every unit of the dataset.
    Returns one ``[K_s]`` tensor per shape."""
    out = [rescore_units(torch.as_tensor(y), [torch.as_tensor(p, dtype=torch.long) for p in points],
                         torch.as_tensor(lab)) for y, points, lab in zip(labels, unit_points, unit_labels)]
    if balance:
        flat = balance_rescores(torch.cat(out), torch.cat([torch.as_tensor(lab) for lab in unit_labels]))
        out = list(flat.split([len(r) for r in out]))
    return out
