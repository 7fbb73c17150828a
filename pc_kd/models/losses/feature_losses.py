"""Feature distillation losses between per-point student predictions and teacher targets.

Every loss takes ``pred [N, C]``, ``target [N, C]``, an optional ``mask [N]`` (bool: points that have a
target, e.g. seen by at least one view) and optional per-point ``weight [N]`` (>= 0; the loss is then the
weighted mean over the points, e.g. class-balanced) and returns a scalar; with no valid point it returns a zero
that keeps the graph. Losses compute in float32 when the inputs come in float16 / bfloat16 (autocast, or fused
targets stored in float16).
"""
import torch
import torch.nn.functional as F
from torch import nn

from pc_kd.registry import MODELS
from pc_kd.utils.precision import float32_loss


def _masked(pred, target, mask):
    if pred.shape != target.shape:
        raise ValueError(f"distillation loss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if mask is None:
        return pred, target
    return pred[mask], target[mask]


class _FeatureLoss(nn.Module):
    def __init__(self, loss_weight: float = 1.0):
        super().__init__()
        self.loss_weight = loss_weight

    @float32_loss
    def forward(self, pred, target, mask=None, weight=None):
        if weight is not None and weight.shape != pred.shape[:1]:
            raise ValueError(f"distillation loss: weight {tuple(weight.shape)} for {pred.shape[0]} points")
        pred, target = _masked(pred, target.to(pred.dtype), mask)
        if pred.shape[0] == 0:
            return pred.sum() * 0.0
        per_point = self.per_point(pred, target)
        if weight is None:
            return self.loss_weight * per_point.mean()
        weight = (weight if mask is None else weight[mask]).to(per_point.dtype)
        return self.loss_weight * (weight * per_point).sum() / weight.sum().clamp(min=1e-12)

    def per_point(self, pred, target):
        """``[n]`` the loss of each point."""
        raise NotImplementedError


@MODELS.register_module()
class CMDLoss(_FeatureLoss):
    """PointDC's cross-modal distillation loss: MSE between L2-normalised student and teacher features."""

    def per_point(self, pred, target):
        return F.mse_loss(F.normalize(pred, dim=1), F.normalize(target, dim=1), reduction="none").sum(1)


@MODELS.register_module()
class CosineLoss(_FeatureLoss):
    """``1 - cos(pred, target)`` averaged over points (OpenScene's feature distillation)."""

    def per_point(self, pred, target):
        return 1 - F.cosine_similarity(pred, target, dim=1)


@MODELS.register_module()
class L1FeatureLoss(_FeatureLoss):
    """Mean absolute difference (over points and channels)."""

    def per_point(self, pred, target):
        return (pred - target).abs().mean(1)


@MODELS.register_module()
class SegmentInfoNCELoss(nn.Module):
    """SLidR-style contrastive loss over segments: pool student and teacher features per segment (super-voxel
    or super-pixel), then InfoNCE where segment s of the student must pick segment s of the teacher among all
    segments of the batch (temperature 0.07).

    ``forward(pred [N, C], target [N, C], segments [N] int64 (-1 = none), mask=None)``.
    """

    def __init__(self, temperature: float = 0.07, loss_weight: float = 1.0, max_segments: int = 4096):
        super().__init__()
        self.temperature, self.loss_weight, self.max_segments = temperature, loss_weight, max_segments

    @float32_loss
    def forward(self, pred, target, segments, mask=None):
        keep = segments >= 0 if mask is None else mask & (segments >= 0)
        pred, target, segments = pred[keep], target[keep].to(pred.dtype), segments[keep]
        if pred.shape[0] == 0:
            return pred.sum() * 0.0
        ids, seg = torch.unique(segments, return_inverse=True)
        count = torch.bincount(seg, minlength=len(ids)).clamp(min=1).to(pred.dtype)[:, None]
        p = pred.new_zeros(len(ids), pred.shape[1]).index_add_(0, seg, pred) / count
        t = target.new_zeros(len(ids), target.shape[1]).index_add_(0, seg, target) / count
        if len(ids) > self.max_segments:
            pick = torch.randperm(len(ids), device=pred.device)[:self.max_segments]
            p, t = p[pick], t[pick]
        logits = F.normalize(p, dim=1) @ F.normalize(t, dim=1).T / self.temperature
        return self.loss_weight * F.cross_entropy(logits, torch.arange(len(p), device=pred.device))
