"""3D knowledge units from 2D part boxes: the points visible in a view inside a box (PartSLIP / PartDistill)."""
from typing import Sequence

import torch

from pc_kd.structures.part_units import KnowledgeUnits, PartBoxes


MAX_COVER = 0.98  # PartSLIP's rule: a box holding this share of a view's visible points is dropped


def points_in_box(uv: torch.Tensor, visible: torch.Tensor, box) -> torch.Tensor:
    """int64 indices of the points visible in one view (``uv [N, 2]``, ``visible [N]``) whose pixel lies inside
    ``box = (x0, y0, x1, y1)`` (borders included)."""
    x0, y0, x1, y1 = [float(v) for v in box]
    inside = visible & (uv[:, 0] >= x0) & (uv[:, 0] <= x1) & (uv[:, 1] >= y0) & (uv[:, 1] <= y1)
    return torch.nonzero(inside).flatten()


def box_units(uv: torch.Tensor, visible: torch.Tensor, predictions: Sequence[PartBoxes],
              max_cover: float = MAX_COVER) -> KnowledgeUnits:
    """One unit per box: the points visible in the box's view whose pixel lies inside the box.

    Args:
        uv: ``[V, N, 2]`` pixel coordinates of the shape's N points in each view.
        visible: ``[V, N]`` bool (z-buffer visibility).
        predictions: V :class:`PartBoxes`, the boxes of each view.
        max_cover: a box whose unit holds at least this fraction of the view's visible points is dropped (a box
            around the whole object says nothing about parts; PartSLIP's rule, 0.98). Empty units are dropped.

    Returns:
        :class:`KnowledgeUnits` of the kept boxes, in view order.
    """
    if uv.ndim != 3 or uv.shape[-1] != 2 or visible.shape != uv.shape[:2]:
        raise ValueError(f"box_units: expected uv [V, N, 2] and visible [V, N]; got {tuple(uv.shape)} and "
                         f"{tuple(visible.shape)}")
    if len(predictions) != uv.shape[0]:
        raise ValueError(f"box_units: {len(predictions)} views of predictions for {uv.shape[0]} views of points")
    points, labels, scores, views, correct = [], [], [], [], []
    known = all(p.correct is not None for p in predictions)
    for v, pred in enumerate(predictions):
        seen = int(visible[v].sum())
        for k in range(len(pred.boxes)):
            idx = points_in_box(uv[v], visible[v], pred.boxes[k])
            if len(idx) == 0 or len(idx) >= max_cover * seen:
                continue
            points.append(idx)
            labels.append(int(pred.labels[k]))
            scores.append(float(pred.scores[k]))
            views.append(v)
            if known:
                correct.append(bool(pred.correct[k]))
    return KnowledgeUnits(points, torch.tensor(labels, dtype=torch.long), torch.tensor(scores),
                          torch.tensor(views, dtype=torch.long),
                          torch.tensor(correct, dtype=torch.bool) if known else None)
