from .bev_distill import (box_keypoints, keypoint_feature_loss, keypoint_relation_loss, response_loss,
                          response_mask, sample_bev)
from .feature_losses import CMDLoss, CosineLoss, L1FeatureLoss, SegmentInfoNCELoss

__all__ = ["box_keypoints", "keypoint_feature_loss", "keypoint_relation_loss", "response_loss", "response_mask",
           "sample_bev", "CMDLoss", "CosineLoss", "L1FeatureLoss", "SegmentInfoNCELoss"]
