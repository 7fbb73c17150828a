"""A configurable point-cloud distiller: the student's code never changes for distillation.

Forward hooks record the outputs of student modules named in ``recorders``; ``connectors`` adapt recorded
tensors (e.g. a projection to the teacher's width); ``loss_mapping`` says which recorded (and connected)
tensor and which target feed each loss in ``distill_losses``. Targets come from the data samples
(``precomputed``: teacher features fused offline by tools/fuse_features.py, with their view counts as the
mask) or, with ``teacher``, from a frozen 2D teacher run inside the training step on the posed frames that
``LoadPosedFrames`` put in the batch (``online``) - the mmrazor ConfigurableDistiller idea for point clouds,
without the mmrazor dependency.
"""
from typing import Dict, List, Optional

import torch
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from pc_kd.heads.clustering import assign_clusters, segment_fill
from pc_kd.registry import MODELS
from pc_kd.utils.precision import to_float32


@MODELS.register_module()
class PointFeatureDistiller(BaseModel):
    """Distil per-point teacher features into a voxel student.

    Args:
        student: config of a voxel backbone ``(voxel_feats, indices, shape, B) -> [M, C]`` (e.g. SpconvUNet).
        recorders: ``{name: module path}`` of student modules whose outputs are recorded ('' = the backbone
            output). Recorded voxel tensors ``[M, C]`` are read per point.
        connectors: ``{name: module config}`` applied to recorded tensors (e.g. ``PointProjection``).
        distill_losses: ``{loss name: loss config}``.
        loss_mapping: ``{loss name: dict(pred=recorder, connector=name or None, target='precomputed',
            segments=None or 'superpoints', pool_targets=None or 'superpoints')}``; ``segments`` hands the
            super-points to a segment-level loss (InfoNCE), ``pool_targets`` replaces each point's target by
            the mean target of its super-point (PointDC's super-voxel features; partly seen super-points then
            teach their unseen points too).
        feature: ``(recorder, connector or None)`` whose per-point output is the student's feature for
            clustering and ``mode='tensor'``.
        teacher: optional frozen 2D teacher config for online targets (see ``online_fusion``).
        online_fusion: options of the online back-projection: ``visibility`` (auto/depth/zbuffer/none),
            ``depth_tol``, ``border``, ``zbuffer_radius``.
        class_balance: optional ``dict(classifier=<config of a frozen teacher with classify(feats [N, C]) ->
            logits [N, K]>, power=0.5, max_weight=10.0)``: each point's loss is weighted by the rarity of its
            target's teacher class in the batch, ``w_c = clip((n_max / n_c) ** power, 1, max_weight)`` with
            ``n_c`` the batch's points whose target the classifier puts in class ``c`` (no label is used: the
            teacher's own classes). Point losses only (not with ``segments`` / ``pool_targets``).
    """

    def __init__(self, student: dict, recorders: Dict[str, str], connectors: Dict[str, dict],
                 distill_losses: Dict[str, dict], loss_mapping: Dict[str, dict], feature=("backbone", None),
                 teacher: Optional[dict] = None, online_fusion: Optional[dict] = None,
                 class_balance: Optional[dict] = None, data_preprocessor: Optional[dict] = None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor or dict(type="PointDataPreprocessor"),
                         init_cfg=init_cfg)
        self.student = MODELS.build(student)
        self.teacher = MODELS.build(teacher) if teacher else None
        self.online_fusion = dict(visibility="auto", depth_tol=0.25, border=2, zbuffer_radius=3)
        self.online_fusion.update(online_fusion or {})
        self.connectors = torch.nn.ModuleDict({k: MODELS.build(v) for k, v in connectors.items()})
        self.distill_losses = torch.nn.ModuleDict({k: MODELS.build(v) for k, v in distill_losses.items()})
        for name, mapping in loss_mapping.items():
            if name not in self.distill_losses:
                raise KeyError(f"loss_mapping names loss {name!r}, not in distill_losses {list(distill_losses)}")
            if mapping["pred"] not in recorders:
                raise KeyError(f"loss_mapping[{name!r}].pred = {mapping['pred']!r} is not a recorder "
                               f"({list(recorders)})")
            if mapping.get("connector") and mapping["connector"] not in self.connectors:
                raise KeyError(f"loss_mapping[{name!r}].connector = {mapping['connector']!r} is not a connector")
            expected = "online" if teacher else "precomputed"
            if mapping.get("target", expected) != expected:
                raise ValueError(f"loss_mapping[{name!r}].target = {mapping['target']!r}, but this distiller has "
                                 f"{'a' if teacher else 'no'} teacher: its targets are {expected!r}")
        self.loss_mapping, self.feature = loss_mapping, tuple(feature)
        self.balance_classifier, self.class_balance = None, None
        if class_balance:
            balance = {**dict(power=0.5, max_weight=10.0), **class_balance}
            if any(m.get("segments") or m.get("pool_targets") for m in loss_mapping.values()):
                raise ValueError("PointFeatureDistiller: class_balance weights point losses; drop it or the "
                                 "segments / pool_targets of loss_mapping")
            self.balance_classifier = MODELS.build(balance.pop("classifier"))
            if not hasattr(self.balance_classifier, "classify"):
                raise TypeError(f"class_balance.classifier: {type(self.balance_classifier).__name__} has no "
                                f"classify(feats) (a teacher with a classifier, e.g. ESPNetV2Teacher)")
            self.balance_classifier.requires_grad_(False)
            self.class_balance = balance
        self._records: Dict[str, torch.Tensor] = {}
        modules = dict(self.student.named_modules())
        for name, path in recorders.items():
            if path not in modules:
                raise KeyError(f"recorder {name!r}: the student has no module {path!r}; some of its modules: "
                               f"{sorted(modules)[:8]}")
            modules[path].register_forward_hook(self._make_hook(name))
        self.register_buffer("centroids", torch.zeros(0), persistent=False)

    def _make_hook(self, name):
        def hook(_module, _inputs, output):
            self._records[name] = output
        return hook

    def set_centroids(self, centroids: torch.Tensor) -> None:
        self.centroids = centroids

    def _run_student(self, inputs: dict) -> Dict[str, torch.Tensor]:
        self._records = {}
        vox = inputs["voxels"]
        self.student(inputs["voxel_feats"], vox.spconv_indices(), vox.spconv_shape, vox.batch_size)
        p2v = vox.point2voxel
        return {k: (v[p2v] if v.shape[0] == len(vox.coords) else v) for k, v in self._records.items()}

    def _connected(self, records, recorder, connector):
        x = records[recorder]
        return self.connectors[connector](x) if connector else x

    def point_features_list(self, inputs: dict) -> List[torch.Tensor]:
        """The student's per-point features (``feature``), split per cloud."""
        records = self._run_student(inputs)
        return inputs["points"].split(self._connected(records, *self.feature))

    def _targets(self, inputs: dict, data_samples):
        """``[N, C]`` targets and ``[N]`` mask: precomputed ones, or the online teacher's on the frames."""
        device = inputs["voxel_feats"].device
        if self.teacher is None:
            if "teacher_feats" not in data_samples[0]:
                raise KeyError("PointFeatureDistiller: no targets; add LoadFusedFeatures to the pipeline "
                               "(offline) or give the distiller a teacher and LoadPosedFrames (online)")
            # stored float16 (half the bytes in workers and on the way here); float32 from here on
            target = torch.cat([to_float32(s.teacher_feats.feats.to(device)) for s in data_samples])
            return target, torch.cat([s.teacher_feats.count for s in data_samples]).to(device) > 0
        from pc_kd.projection import backproject_features

        opts = dict(self.online_fusion)
        targets, masks = [], []
        for coord, sample in zip(inputs["points"].split(inputs["points"].coord), data_samples):
            if "frames" not in sample:
                raise KeyError("PointFeatureDistiller: an online teacher needs LoadPosedFrames in the pipeline")
            frames = sample.frames
            images = frames.images.to(device)
            visibility = opts["visibility"]
            if visibility == "auto":
                visibility = "depth" if "depth" in frames else "zbuffer"
            feats, count = backproject_features(
                coord.double(), self.teacher(images), frames.lidar2img.to(device), tuple(images.shape[2:]),
                visibility=visibility, depth_maps=frames.depth.to(device) if visibility == "depth" else None,
                depth_tol=opts["depth_tol"], border=opts["border"], zbuffer_radius=opts["zbuffer_radius"])
            targets.append(feats)
            masks.append(count > 0)
        return torch.cat(targets), torch.cat(masks)

    @torch.no_grad()
    def class_balance_weights(self, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``[N]`` weights of the points with a target (``mask``; 0 elsewhere): ``w_c`` of the teacher class of
        each ``target [N, C]`` row (``class_balance``)."""
        classes = self.balance_classifier.classify(target[mask]).argmax(1)
        count = torch.bincount(classes).to(target.dtype)
        per_class = (count.max() / count.clamp(min=1)) ** self.class_balance["power"]
        weight = torch.zeros(len(target), dtype=target.dtype, device=target.device)
        weight[mask] = per_class.clamp(1.0, self.class_balance["max_weight"])[classes]
        return weight

    def loss(self, inputs: dict, data_samples) -> dict:
        return self.distill_loss(self._run_student(inputs), inputs, data_samples)

    def distill_loss(self, records: Dict[str, torch.Tensor], inputs: dict, data_samples) -> dict:
        """The losses of ``loss_mapping`` on the student's recorded per-point tensors ``records``."""
        device = inputs["voxel_feats"].device
        target, mask = self._targets(inputs, data_samples)
        weight = self.class_balance_weights(target, mask) if self.class_balance and mask.any() else None
        losses = {}
        for name, mapping in self.loss_mapping.items():
            pred = self._connected(records, mapping["pred"], mapping.get("connector"))
            if mapping.get("segments") or mapping.get("pool_targets"):
                seg = torch.cat([s.superpoints + 1_000_000 * i for i, s in enumerate(data_samples)]).to(device)
            if mapping.get("pool_targets"):
                losses[name] = self.distill_losses[name](pred, *segment_fill(target, mask, seg))
            elif mapping.get("segments"):
                losses[name] = self.distill_losses[name](pred, target, seg, mask)
            elif weight is not None:
                losses[name] = self.distill_losses[name](pred, target, mask, weight=weight)
            else:
                losses[name] = self.distill_losses[name](pred, target, mask)
        return losses

    def forward(self, inputs: dict, data_samples=None, mode: str = "tensor"):
        if mode == "loss":
            return self.loss(inputs, data_samples)
        if mode == "tensor":
            return self.point_features_list(inputs)
        if mode == "predict":
            if self.centroids.numel() == 0:
                raise RuntimeError("PointFeatureDistiller: no cluster centres; add dict(type='ClusterCentroidsHook') "
                                   "to custom_hooks (it fits them before each val / test epoch)")
            for feats, sample in zip(self.point_features_list(inputs), data_samples):
                seg = sample.superpoints.to(feats.device) if "superpoints" in sample else None
                sample.pred_pts_seg = BaseDataElement(pts_semantic_mask=assign_clusters(feats, self.centroids, seg))
            return data_samples
        raise ValueError(f"PointFeatureDistiller: unknown mode {mode!r}")
