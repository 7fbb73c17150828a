from .feature_losses import CMDLoss, CosineLoss, L1FeatureLoss, SegmentInfoNCELoss

__all__ = ["CMDLoss", "CosineLoss", "L1FeatureLoss", "SegmentInfoNCELoss"]
