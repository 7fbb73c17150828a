"""PartDistill's forward distillation loss over knowledge units with per-batch class weights, and the padding of a
batch's units into its tensors. The plateau trigger and the re-scoring of backward distillation live with the
knowledge units (:mod:`pc_kd.structures.part_units`) and are re-exported here.

Notation: B shapes, N points each, K units per shape (padded with zero-score units), P parts of the category.
``unit_scores [B, N, K]`` holds ``s_ik``: unit k's score on its points, 0 elsewhere; ``unit_labels [B, K]``
holds ``c_k``.
"""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

# backward distillation's trigger and re-scoring live with the knowledge units (the Runner hook reads them there)
from pc_kd.structures.part_units import balance_rescores, plateau_reached, rescore_units

__all__ = ["pad_units", "part_class_weights", "part_distill_loss", "balance_rescores", "plateau_reached",
           "rescore_units"]


def pad_units(scores: Sequence[torch.Tensor], labels: Sequence[torch.Tensor], num_points: Optional[int] = None
              ) -> Tuple[torch.Tensor, torch.Tensor]:
    """A batch's units as the loss takes them: per shape ``scores[b] [N_b, K_b]`` (``s_ik``) and ``labels[b]
    [K_b]`` -> ``unit_scores [B, N, K]`` float32 and ``unit_labels [B, K]`` int64, padded with zero-score points
    and units (``N`` = ``num_points`` or the largest ``N_b``, ``K`` = the largest ``K_b``, at least 1). Padding adds
    nothing to the loss's sums or to the class weights' counts."""
    n = max(s.shape[0] for s in scores) if num_points is None else num_points
    k = max(1, max(len(lb) for lb in labels))
    padded = torch.stack([F.pad(s.float(), (0, k - s.shape[1], 0, n - s.shape[0])) for s in scores])
    return padded, torch.stack([F.pad(torch.as_tensor(lb).long(), (0, k - len(lb))) for lb in labels])


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
