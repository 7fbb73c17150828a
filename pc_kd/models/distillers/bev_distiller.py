"""Cross-modal BEV distillation (UniDistill's three terms): a student :class:`BEVDetector` learns from a frozen
teacher :class:`BEVDetector` of another modality at the keypoints of the ground-truth boxes.

The distiller reads both detectors through :meth:`BEVDetector.extract` (``bev_low``, ``bev_high``, ``head``), so
neither detector is edited. The teacher is built from its config, loaded once with a strict key and shape check,
frozen, kept in ``eval()`` whatever ``train()`` says, run under ``no_grad``, and is not a registered submodule:
the student's checkpoints never hold it (``.to()`` / ``.cuda()`` still move it).
"""
from typing import Dict, List, Optional, Union

import torch
from mmengine.model import BaseModel
from torch import nn

from pc_kd.models.losses.bev_distill import keypoint_feature_loss, keypoint_relation_loss, response_loss
from pc_kd.ops.bev_pool import BEVGrid
from pc_kd.registry import MODELS

LOSS_TERMS = ("feature", "relation", "response")


def bev_channels(detector) -> tuple:
    """``(channels of bev_low, channels of bev_high)`` of a :class:`BEVDetector`."""
    if detector.fuser is not None:
        low = detector.fuser.out_channels
    else:
        low = (detector.lidar_encoder or detector.camera_encoder).out_channels
    return low, detector.head.in_channels


def head_grid(detector, shape) -> BEVGrid:
    """The grid of a map ``[..., H, W]`` over the detector head's ``point_cloud_range``."""
    x0, y0, z0, x1, y1, z1 = detector.head.pc_range
    H, W = shape[-2:]
    return BEVGrid((x0, x1), (y0, y1), (z0, z1), ((x1 - x0) / W, (y1 - y0) / H))


@MODELS.register_module()
class BEVDistiller(BaseModel):
    """Distil a teacher BEV detector into a student BEV detector.

    Args:
        student: config of the student :class:`BEVDetector` (trained; its own detection losses are kept).
        teacher: config of the teacher :class:`BEVDetector`, or the path of a config file whose ``model`` it is.
        teacher_ckpt: the teacher's checkpoint (a Runner checkpoint or a bare state dict), loaded with
            ``weights_only=True``; None leaves the teacher as built (tests only).
        weights: ``dict(feature=, relation=, response=)``: the keypoint feature loss on ``bev_low``, the
            keypoint relation loss on ``bev_high``, the response loss on every task head (cls and reg, each
            times the weight); a term with weight 0 is not computed.
        adapter: ``'conv1x1'`` maps the student's BEV maps to the teacher's channels before the feature and
            relation losses (also when they match, as UniDistill); ``None`` requires equal channels.
        min_overlap, t_temp: of :func:`response_loss`.
    """

    def __init__(self, student: dict, teacher: Union[dict, str], teacher_ckpt: Optional[str] = None,
                 weights: Optional[Dict[str, float]] = None, adapter: Optional[str] = "conv1x1",
                 min_overlap: float = 0.7, t_temp: float = 2.0, data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor or student.get("data_preprocessor")
                         or dict(type="DetDataPreprocessor"), init_cfg=init_cfg)
        weights = dict(weights if weights is not None else dict(feature=10.0, relation=5.0, response=1.0))
        unknown = sorted(set(weights) - set(LOSS_TERMS))
        if unknown:
            raise KeyError(f"BEVDistiller: weights {unknown} name no loss; the terms are {list(LOSS_TERMS)}")
        self.weights = {k: float(weights.get(k, 0.0)) for k in LOSS_TERMS}
        self.min_overlap, self.t_temp = min_overlap, t_temp
        self.student = MODELS.build(student)
        if isinstance(teacher, str):
            from mmengine.config import Config

            teacher = Config.fromfile(teacher).model
        teacher_model = MODELS.build(teacher)
        if teacher_ckpt:
            self._load_teacher(teacher_model, teacher_ckpt)
        for p in teacher_model.parameters():
            p.requires_grad_(False)
        object.__setattr__(self, "teacher", teacher_model.eval())  # not a submodule: never saved, never trained
        self._check_pair()
        s_low, s_high = bev_channels(self.student)
        t_low, t_high = bev_channels(self.teacher)
        if adapter == "conv1x1":
            self.adapters = nn.ModuleDict(dict(bev_low=nn.Conv2d(s_low, t_low, 1),
                                               bev_high=nn.Conv2d(s_high, t_high, 1)))
        elif adapter is None:
            if (s_low, s_high) != (t_low, t_high):
                raise ValueError(f"BEVDistiller: student BEV channels (bev_low {s_low}, bev_high {s_high}) differ "
                                 f"from the teacher's ({t_low}, {t_high}); use adapter='conv1x1'")
            self.adapters = nn.ModuleDict(dict(bev_low=nn.Identity(), bev_high=nn.Identity()))
        else:
            raise ValueError(f"BEVDistiller: adapter {adapter!r}; expected 'conv1x1' or None")

    @staticmethod
    def _load_teacher(model: nn.Module, path: str) -> None:
        from pc_kd.engine.checkpoint import check_state_dict_matches, load_local_checkpoint

        ckpt = load_local_checkpoint(path, map_location="cpu")
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
        check_state_dict_matches(model, state, path)
        model.load_state_dict({k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()})

    def _check_pair(self) -> None:
        s, t = self.student.head, self.teacher.head
        if (s.pc_range, s.out_cell, s.grid_hw) != (t.pc_range, t.out_cell, t.grid_hw):
            raise ValueError(f"BEVDistiller: the student's BEV grid (range {s.pc_range}, cell {s.out_cell}, "
                             f"{s.grid_hw} cells) differs from the teacher's (range {t.pc_range}, cell {t.out_cell}, "
                             f"{t.grid_hw} cells); give both the same grid")
        if s.task_labels != t.task_labels or s.class_names != t.class_names:
            raise ValueError(f"BEVDistiller: student tasks {s.task_labels} and teacher tasks {t.task_labels} "
                             f"(labels into {s.class_names} / {t.class_names}) differ; the response loss pairs them")

    def _apply(self, fn, *args, **kwargs):
        self.teacher._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()
        return self

    def distill_losses(self, student_feats: dict, teacher_feats: dict, boxes: List[torch.Tensor]
                       ) -> Dict[str, torch.Tensor]:
        """The weighted distillation terms from two :meth:`BEVDetector.extract` outputs and the boxes of each
        sample (``[N_b, >=7]``, the BEV maps' frame)."""
        losses = {}
        if self.weights["feature"]:
            fs = self.adapters["bev_low"](student_feats["bev_low"])
            losses["loss_distill_feature"] = self.weights["feature"] * keypoint_feature_loss(
                fs, teacher_feats["bev_low"], boxes, head_grid(self.student, fs.shape))
        if self.weights["relation"]:
            fs = self.adapters["bev_high"](student_feats["bev_high"])
            losses["loss_distill_relation"] = self.weights["relation"] * keypoint_relation_loss(
                fs, teacher_feats["bev_high"], boxes, head_grid(self.student, fs.shape))
        if self.weights["response"]:
            s_head = student_feats["head"]
            grid = head_grid(self.student, s_head[0]["heatmap"].shape)
            response = response_loss(s_head, teacher_feats["head"], boxes, grid, self.min_overlap, self.t_temp)
            losses["loss_distill_response_cls"] = self.weights["response"] * response["cls"]
            losses["loss_distill_response_reg"] = self.weights["response"] * response["reg"]
        return losses

    def loss(self, inputs: dict, data_samples: List) -> Dict[str, torch.Tensor]:
        feats = self.student.extract(inputs)
        losses = self.student.loss_from_features(feats, inputs, data_samples)
        with torch.no_grad():
            teacher_feats = self.teacher.extract(inputs)
        boxes = [s.gt_instances_3d.bboxes_3d.tensor.to(feats["bev_high"].device) for s in data_samples]
        losses.update(self.distill_losses(feats, teacher_feats, boxes))
        return losses

    def forward(self, inputs: dict, data_samples: Optional[List] = None, mode: str = "tensor"):
        if mode == "loss":
            return self.loss(inputs, data_samples)
        return self.student(inputs, data_samples, mode)
