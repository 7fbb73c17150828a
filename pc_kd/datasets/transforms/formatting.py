"""Packing a results dict into ``dict(inputs=..., data_samples=Point3DDataSample)`` for the model."""
import numpy as np
import torch
from mmengine.structures import BaseDataElement, InstanceData

from pc_kd.registry import TRANSFORMS
from pc_kd.structures import Point3DDataSample

DEFAULT_META_KEYS = ("sample_idx", "lidar_path", "num_points", "aug_matrix", "axis_align_matrix", "token")


@TRANSFORMS.register_module()
class PackPointInputs:
    """Pack ``points`` (and ``imgs`` when loaded) as inputs; masks and boxes into a Point3DDataSample.

    Output: ``inputs = {'points': [N, C] float32 tensor}``; ``data_samples`` with ``gt_pts_seg``
    (``pts_semantic_mask``, ``pts_instance_mask``), ``superpoints [N]``, ``teacher_feats`` (``feats``,
    ``count``: distillation targets), ``frames`` and ``gt_instances_3d`` when those were loaded, meta fields
    from ``meta_keys``.
    """

    def __init__(self, meta_keys=DEFAULT_META_KEYS):
        self.meta_keys = tuple(meta_keys)

    def __call__(self, results: dict) -> dict:
        inputs = {"points": torch.from_numpy(np.ascontiguousarray(results["points"], dtype=np.float32))}
        sample = Point3DDataSample(metainfo={k: results[k] for k in self.meta_keys if k in results})
        seg = {}
        for key in ("pts_semantic_mask", "pts_instance_mask"):
            if key in results:
                seg[key] = torch.from_numpy(np.asarray(results[key], dtype=np.int64))
        if seg:
            sample.gt_pts_seg = BaseDataElement(**seg)
        if "superpoints" in results:
            sample.superpoints = torch.from_numpy(np.asarray(results["superpoints"], dtype=np.int64))
        if "teacher_feats" in results:
            sample.teacher_feats = BaseDataElement(feats=torch.from_numpy(results["teacher_feats"]),
                                                   count=torch.from_numpy(results["teacher_count"]))
        if "frame_images" in results:
            frames = dict(images=results["frame_images"], lidar2img=results["frame_lidar2img"])
            if results.get("frame_depth") is not None:
                frames["depth"] = results["frame_depth"]
            sample.frames = BaseDataElement(**frames)
        if "gt_bboxes_3d" in results:
            sample.gt_instances_3d = InstanceData(bboxes_3d=results["gt_bboxes_3d"].tensor.float(),
                                                  labels_3d=torch.as_tensor(results["gt_labels_3d"]))
        return {"inputs": inputs, "data_samples": sample}
