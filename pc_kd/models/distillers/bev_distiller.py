"""Cross-modal BEV distillation (UniDistill's three terms, plus two options): a student :class:`BEVDetector`
learns from a frozen teacher :class:`BEVDetector` of another modality at the keypoints of the ground-truth boxes.

The distiller reads both detectors through :meth:`BEVDetector.extract` (``bev_low``, ``bev_high``, ``head``), so
neither detector is edited. The teacher is built from its config, loaded once with a strict key and shape check,
frozen, kept in ``eval()`` whatever ``train()`` says, run under ``no_grad``, and is not a registered submodule:
the student's checkpoints never hold it (``.to()`` / ``.cuda()`` still move it).

Where it differs from UniDistill's public code, on purpose: the teacher is loaded strictly once (UniDistill loads
it non-strictly, dropping shape-mismatched keys, and reloads it every step in 3 of 4 paths); the teacher's
BatchNorm layers stay in ``eval()`` (its running statistics, so its targets do not depend on the batch), where
UniDistill's teacher follows the training mode of the experiment around it; UniDistill's code has no adapter
between the student's and the teacher's maps (its maps have equal channels), pc_kd's ``adapter='conv1x1'`` is an
option that costs nothing when the channels match and is required when they do not.
"""
from typing import Dict, List, Optional, Union

import torch
from mmengine.model import BaseModel
from torch import nn

from pc_kd.models.losses.bev_distill import (dense_feature_loss, keypoint_feature_loss, keypoint_relation_loss,
                                             response_loss)
from pc_kd.ops.bev_pool import BEVGrid
from pc_kd.registry import MODELS

LOSS_TERMS = ("feature", "relation", "response", "dense", "crosskd")


def bev_channels(detector) -> tuple:
    """``(channels of bev_low, channels of bev_high)`` of a :class:`BEVDetector`."""
    if detector.fuser is not None:
        low = detector.fuser.out_channels
    else:
        low = (detector.lidar_encoder or detector.camera_encoder).out_channels
    motion = detector.motion.out_channels if detector.motion is not None else 0
    return low, detector.head.in_channels - motion


def head_grid(detector, shape) -> BEVGrid:
    """The grid of a map ``[..., H, W]`` over the detector head's ``point_cloud_range``."""
    x0, y0, z0, x1, y1, z1 = detector.head.pc_range
    H, W = shape[-2:]
    return BEVGrid((x0, x1), (y0, y1), (z0, z1), ((x1 - x0) / W, (y1 - y0) / H))


def camera_rig_of(cfg, source: str) -> Optional[dict]:
    """``dict(cam_names, img_hw, source)`` of the ``LoadMultiViewImages`` step in ``cfg``'s training pipeline (its
    ``cam_names`` and ``final_hw``, else the dataset's ``image_hw``), or None when it loads no images."""
    dataset = cfg.get("train_dataloader", {}).get("dataset", {})
    for step in dataset.get("pipeline", []):
        if step.get("type") == "LoadMultiViewImages":
            hw = step.get("final_hw") or dataset.get("image_hw")
            return dict(cam_names=step.get("cam_names"), img_hw=None if hw is None else [int(v) for v in hw],
                        source=source)
    return None


def _boxes_of(data_samples: List, device) -> List[torch.Tensor]:
    """The ground-truth boxes of each sample, ``[N_b, >=7]`` in the BEV maps' frame, on ``device``."""
    return [s.gt_instances_3d.bboxes_3d.tensor.to(device) for s in data_samples]


def _as_leaves(outputs):
    """``outputs`` (tensors in dicts and lists) with every float tensor detached as a leaf that wants a gradient:
    a backward from them stops there."""
    if isinstance(outputs, torch.Tensor):
        return outputs.detach().requires_grad_(outputs.is_floating_point())
    if isinstance(outputs, dict):
        return {k: _as_leaves(v) for k, v in outputs.items()}
    if isinstance(outputs, (list, tuple)):
        return type(outputs)(_as_leaves(v) for v in outputs)
    return outputs


@MODELS.register_module()
class BEVDistiller(BaseModel):
    """Distil a teacher BEV detector into a student BEV detector.

    Args:
        student: config of the student :class:`BEVDetector` (trained; its own detection losses are kept), or the
            path of a config file whose ``model`` it is (e.g. the student's supervised config: the same detector
            as its baseline, built first, so a seeded run starts from the baseline's initial weights).
        teacher: config of the teacher :class:`BEVDetector`, or the path of a config file whose ``model`` it is.
        teacher_ckpt: the teacher's checkpoint (a Runner checkpoint or a bare state dict), loaded with
            ``weights_only=True``; None leaves the teacher as built (tests only).
        weights: ``dict(feature=, relation=, response=, dense=, crosskd=)``: UniDistill's keypoint feature loss on
            ``bev_low``, keypoint relation loss on ``bev_high`` and response loss on every task head (cls and reg,
            each times the weight); two options: ``dense``, BEVDistill-style foreground-weighted imitation of the
            whole ``bev_high`` map (:func:`dense_feature_loss`, squared error summed over channels), and
            ``crosskd``, CrossKD-style head mimicking (the student's adapted ``bev_high`` through the frozen
            teacher head, its responses against the teacher's by :func:`response_loss` with both heatmaps read at
            ``t_temp``, so the loss is 0 when the student's features are the teacher's; gradients reach the student
            through the teacher head). A term with weight 0 or not given is not computed.
        adapter: ``'conv1x1'`` maps the student's BEV maps to the teacher's channels before the feature and
            relation losses (also when they match); ``None`` requires equal channels.
        min_overlap, t_temp: of :func:`response_loss` (UniDistill: 0.7 and 2, the teacher's heatmap softened).
        dense_overlap: the Gaussians' overlap of :func:`dense_feature_loss` (0.1: about the whole box).

    The camera rig and image size the teacher trained on (from the training config its Runner checkpoint
    records, else from ``teacher`` when that is a config file whose pipeline loads images) are checked against
    the samples' ``cam_names`` / ``img_hw`` at the first step.
    """

    def __init__(self, student: Union[dict, str], teacher: Union[dict, str], teacher_ckpt: Optional[str] = None,
                 weights: Optional[Dict[str, float]] = None, adapter: Optional[str] = "conv1x1",
                 min_overlap: float = 0.7, t_temp: float = 2.0, dense_overlap: float = 0.1,
                 data_preprocessor: Optional[dict] = None, init_cfg=None):
        from mmengine.config import Config

        if isinstance(student, str):
            student = Config.fromfile(student).model
        super().__init__(data_preprocessor=data_preprocessor or student.get("data_preprocessor")
                         or dict(type="DetDataPreprocessor"), init_cfg=init_cfg)
        weights = dict(weights if weights is not None else dict(feature=10.0, relation=5.0, response=1.0))
        unknown = sorted(set(weights) - set(LOSS_TERMS))
        if unknown:
            raise KeyError(f"BEVDistiller: weights {unknown} name no loss; the terms are {list(LOSS_TERMS)}")
        self.weights = {k: float(weights.get(k, 0.0)) for k in LOSS_TERMS}
        self.min_overlap, self.t_temp, self.dense_overlap = min_overlap, t_temp, dense_overlap
        self.student = MODELS.build(student)
        self.teacher_rig = None
        if isinstance(teacher, str):
            teacher_cfg = Config.fromfile(teacher)
            self.teacher_rig = camera_rig_of(teacher_cfg, teacher)
            teacher = teacher_cfg.model
        teacher_model = MODELS.build(teacher)
        if teacher_ckpt:
            trained_cfg = self._load_teacher(teacher_model, teacher_ckpt)
            if trained_cfg is not None:  # what the teacher really trained on, overrides included
                self.teacher_rig = camera_rig_of(trained_cfg, f"{teacher_ckpt}, its training config")
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
    def _load_teacher(model: nn.Module, path: str):
        """Load the teacher's weights strictly; return the training config a Runner checkpoint records (else
        None)."""
        from mmengine.config import Config

        from pc_kd.engine.checkpoint import check_state_dict_matches, load_local_checkpoint

        ckpt = load_local_checkpoint(path, map_location="cpu")
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
        check_state_dict_matches(model, state, path)
        model.load_state_dict({k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()})
        text = ckpt.get("meta", {}).get("cfg") if isinstance(ckpt, dict) else None
        return Config.fromstring(text, ".py") if isinstance(text, str) else None

    def _check_pair(self) -> None:
        s, t = self.student.head, self.teacher.head
        if (s.pc_range, s.out_cell, s.grid_hw) != (t.pc_range, t.out_cell, t.grid_hw):
            raise ValueError(f"BEVDistiller: the student's BEV grid (range {s.pc_range}, cell {s.out_cell}, "
                             f"{s.grid_hw} cells) differs from the teacher's (range {t.pc_range}, cell {t.out_cell}, "
                             f"{t.grid_hw} cells); give both the same grid")
        if s.task_labels != t.task_labels or s.class_names != t.class_names:
            raise ValueError(f"BEVDistiller: student tasks {s.task_labels} and teacher tasks {t.task_labels} "
                             f"(labels into {s.class_names} / {t.class_names}) differ; the response loss pairs them")
        if s.yaw_symmetry != t.yaw_symmetry:
            raise ValueError(f"BEVDistiller: the student's rot maps hold yaw x {s.yaw_symmetry} per task, the "
                             f"teacher's yaw x {t.yaw_symmetry} (each task's yaw_symmetry); the response loss pairs "
                             f"them, so give both heads' tasks the same yaw_symmetry")

    def _check_rig(self, data_samples: List) -> None:
        """The samples' cameras against the rig the teacher config trained on (once per run)."""
        rig, self.teacher_rig = self.teacher_rig, None
        if rig is None or not data_samples:
            return
        meta = data_samples[0].metainfo
        seen = dict(cam_names=meta.get("cam_names"), img_hw=meta.get("img_hw"))
        for key, expected in rig.items():
            if key == "source" or expected is None:
                continue
            found = None if seen[key] is None else [int(v) if key == "img_hw" else v for v in seen[key]]
            if found != list(expected):
                raise ValueError(f"BEVDistiller: the teacher ({rig['source']}) was trained on {key} "
                                 f"{list(expected)}, the samples have {found}; camera rigs differ - give the "
                                 f"student's pipeline the teacher's cameras and image size")

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
        grid = head_grid(self.student, student_feats["bev_high"].shape)  # bev_high's and the head maps' grid
        # the keypoint and dense terms adapt their samples or cells, not the maps (the same values, fewer cells)
        if self.weights["feature"]:
            losses["loss_distill_feature"] = self.weights["feature"] * keypoint_feature_loss(
                student_feats["bev_low"], teacher_feats["bev_low"], boxes,
                head_grid(self.student, student_feats["bev_low"].shape), adapter=self.adapters["bev_low"])
        if self.weights["relation"]:
            losses["loss_distill_relation"] = self.weights["relation"] * keypoint_relation_loss(
                student_feats["bev_high"], teacher_feats["bev_high"], boxes, grid, adapter=self.adapters["bev_high"])
        if self.weights["response"]:
            response = response_loss(student_feats["head"], teacher_feats["head"], boxes, grid, self.min_overlap,
                                     self.t_temp)
            losses["loss_distill_response_cls"] = self.weights["response"] * response["cls"]
            losses["loss_distill_response_reg"] = self.weights["response"] * response["reg"]
        if self.weights["dense"]:
            losses["loss_distill_dense"] = self.weights["dense"] * dense_feature_loss(
                student_feats["bev_high"], teacher_feats["bev_high"], boxes, grid, self.dense_overlap,
                adapter=self.adapters["bev_high"])
        if self.weights["crosskd"]:  # the whole adapted map through the teacher's head
            high = self.adapters["bev_high"](student_feats["bev_high"])
            through_teacher = self.teacher.head(self.teacher.head_input(high, teacher_feats.get("motion")))
            response = response_loss(through_teacher, teacher_feats["head"], boxes, grid, self.min_overlap,
                                     self.t_temp, s_temp=self.t_temp)  # both sides at one temperature
            losses["loss_distill_crosskd_cls"] = self.weights["crosskd"] * response["cls"]
            losses["loss_distill_crosskd_reg"] = self.weights["crosskd"] * response["reg"]
        return losses

    def loss(self, inputs: dict, data_samples: List) -> Dict[str, torch.Tensor]:
        self._check_rig(data_samples)
        feats = self.student.extract(inputs)
        losses = self.student.loss_from_features(feats, inputs, data_samples)
        with torch.no_grad():
            teacher_feats = self.teacher.extract(inputs)
        losses.update(self.distill_losses(feats, teacher_feats, _boxes_of(data_samples, feats["bev_high"].device)))
        return losses

    def step_parts(self, inputs: dict, data_samples: List) -> Dict[str, object]:
        """Four callables on one preprocessed batch, for timing what a step costs: ``student`` (its extract,
        detection losses and backward), ``teacher`` (its forward under ``no_grad``), ``full`` (the
        distillation step: both, the distillation losses and backward) and ``losses`` (the distillation losses
        and their backward down to both detectors' outputs, extracted once here: what the terms add to a step,
        timed directly instead of as the full step minus the other two). Gradients are cleared before each
        call."""
        with torch.no_grad():
            student_feats, teacher_feats = self.student.extract(inputs), self.teacher.extract(inputs)
        student_feats = _as_leaves(student_feats)
        boxes = _boxes_of(data_samples, student_feats["bev_high"].device)

        def student():
            self.zero_grad(set_to_none=True)
            feats = self.student.extract(inputs)
            sum(self.student.loss_from_features(feats, inputs, data_samples).values()).backward()

        def teacher():
            with torch.no_grad():
                self.teacher.extract(inputs)

        def full():
            self.zero_grad(set_to_none=True)
            sum(self.loss(inputs, data_samples).values()).backward()

        def losses():
            self.zero_grad(set_to_none=True)
            sum(self.distill_losses(student_feats, teacher_feats, boxes).values()).backward()

        return dict(student=student, teacher=teacher, full=full, losses=losses)

    def forward(self, inputs: dict, data_samples: Optional[List] = None, mode: str = "tensor"):
        if mode == "loss":
            return self.loss(inputs, data_samples)
        return self.student(inputs, data_samples, mode)
