"""PartDistill's losses and its backward distillation: the forward distillation loss over knowledge units with
per-batch class weights, the plateau trigger, and the re-scoring of units by the student's own labels.

Notation: B shapes, N points each, K units per shape (padded with zero-score units), P parts of the category.
``unit_scores [B, N, K]`` holds ``s_ik``: unit k's score on its points, 0 elsewhere; ``unit_labels [B, K]``
holds ``c_k``.
"""
import math
from typing import List, Sequence

import torch
import torch.nn.functional as F


def part_class_weights(unit_scores: torch.Tensor, unit_labels: torch.Tensor, num_parts: int) -> torch.Tensor:
    """``[P]`` class weights of one batch: ``n_c`` = the number of (shape, point, unit) triples with ``s_ik > 0``
    and ``c_k = c``, ``N = sum_c n_c``, ``w_c = clip(1 + log_4(N / (n_c P)), 1, 4)``; a part no unit names
    (``n_c = 0``) gets 4. A batch without any unit gives all ones."""
    covered = unit_scores > 0  # [B, N, K]
    labels = unit_labels[:, None, :].expand_as(covered)[covered]
    counts = torch.bincount(labels, minlength=num_parts)[:num_parts].to(unit_scores.dtype)
    total = counts.sum()
    if total == 0:
        return torch.ones(num_parts, dtype=unit_scores.dtype, device=unit_scores.device)
    ratio = total / (counts * num_parts)  # inf where n_c = 0
    return (1 + torch.log(ratio) / math.log(4)).clamp(1, 4)


def part_distill_loss(logits: torch.Tensor, unit_scores: torch.Tensor, unit_labels: torch.Tensor,
                      class_weights: torch.Tensor) -> torch.Tensor:
    """The forward distillation loss
    ``L = mean_{b,i} [ sum_k s_ik w_{c_k} CE(z_i, c_k) / max(1, #{k: s_ik > 0}) ]``.

    Args:
        logits: ``[B, N, P]`` the student's part logits ``z_i``.
        unit_scores: ``[B, N, K]`` ``s_ik`` (confidences, or backward distillation's re-scores, on the units'
            points; 0 elsewhere).
        unit_labels: ``[B, K]`` int64 ``c_k``.
        class_weights: ``[P]`` ``w_c`` (:func:`part_class_weights`).

    The mean runs over all points, uncovered ones included (they add 0).
    """
    if logits.shape[:2] != unit_scores.shape[:2] or unit_scores.shape[::2] != unit_labels.shape:
        raise ValueError(f"part_distill_loss: logits {tuple(logits.shape)}, unit_scores {tuple(unit_scores.shape)} "
                         f"and unit_labels {tuple(unit_labels.shape)} do not agree on B, N, K")
    logp = F.log_softmax(logits, dim=-1)  # [B, N, P]
    index = unit_labels[:, None, :].expand(-1, logits.shape[1], -1)  # [B, N, K]
    ce = -torch.gather(logp, 2, index) * class_weights[index]  # [B, N, K]: w_{c_k} CE(z_i, c_k)
    per_point = (unit_scores * ce).sum(-1) / (unit_scores > 0).sum(-1).clamp(min=1)
    return per_point.mean()


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
