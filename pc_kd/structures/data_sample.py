"""Per-sample container passed between data pipeline, model and metrics (mmengine structures)."""
import torch
from mmengine.structures import BaseDataElement, InstanceData


def _typed_field(name: str, dtype: type, doc: str) -> property:
    """A data field stored as ``_<name>`` whose setter checks the type (as mmdet3d's data samples do)."""
    private = "_" + name

    def getter(self):
        return getattr(self, private)

    def setter(self, value):
        self.set_field(value, private, dtype=dtype)

    def deleter(self):
        delattr(self, private)

    return property(getter, setter, deleter, doc)


class Point3DDataSample(BaseDataElement):
    """Annotations and predictions of one point cloud (field names follow mmdet3d's Det3DDataSample).

    Meta fields (``metainfo``): ``sample_idx``, ``lidar_path``, ``num_points`` ...
    """

    gt_pts_seg = _typed_field("gt_pts_seg", BaseDataElement,
                              "``pts_semantic_mask [N]`` int64 class ids (ignore index = len(classes)); "
                              "``pts_instance_mask [N]`` int64 when loaded.")
    pred_pts_seg = _typed_field("pred_pts_seg", BaseDataElement,
                                "``pts_semantic_mask [N]`` int64 predicted class per input point.")
    teacher_feats = _typed_field("teacher_feats", BaseDataElement,
                                 "distillation targets (a teacher's output, not ground truth): ``feats [N, C]`` "
                                 "(2D teacher features fused onto the points) and ``count [N]`` (views per point; "
                                 "0 = no target).")
    superpoints = _typed_field("superpoints", torch.Tensor,
                               "``[N]`` int64 super-point (segment) id of every point, -1 = none; made without "
                               "labels (tools/make_superpoints.py).")
    frames = _typed_field("frames", BaseDataElement,
                          "posed frames for an online teacher: ``images [V, 3, H, W]`` (0..1), ``lidar2img "
                          "[V, 4, 4]`` (after augmentation), optional ``depth [V, H, W]`` metres.")
    part_units = _typed_field("part_units", BaseDataElement,
                              "knowledge units (PartDistill; a 2D part predictor's output, not ground truth): "
                              "``scores [N, K]`` float32 s_ik (unit k's score on its points, 0 elsewhere), "
                              "``labels [K]`` int64 part ids c_k.")
    depth_maps = _typed_field("depth_maps", torch.Tensor,
                              "``[V, H, W]`` float32 LiDAR depth (metres) per camera image, 0 = no point.")
    gt_instances_3d = _typed_field("gt_instances_3d", InstanceData,
                                   "``bboxes_3d`` (Boxes3D), ``labels_3d [M]`` int64 (+ ``num_lidar_pts``, "
                                   "``attr_labels`` for detection).")
    pred_instances_3d = _typed_field("pred_instances_3d", InstanceData,
                                     "``bboxes_3d`` (Boxes3D), ``scores_3d [M]``, ``labels_3d [M]``.")
