"""Runner hooks."""
import json
import os.path as osp
from pathlib import Path

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop

from pc_kd.registry import HOOKS
from pc_kd.utils.io import atomic_write

from .checkpoint import PortableHistoryBuffer


@HOOKS.register_module()
class PortableCheckpointHook(Hook):
    """Store the message hub's log buffers as :class:`PortableHistoryBuffer` in every checkpoint, so that the
    Runner's own checkpoints resume under ``torch.load(weights_only=True)`` (added by ``build_runner``)."""

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get("message_hub")
        if isinstance(hub, dict) and isinstance(hub.get("log_scalars"), dict):
            hub["log_scalars"] = {k: PortableHistoryBuffer.from_buffer(v) for k, v in hub["log_scalars"].items()}


def _sample_name(sample, fallback: int) -> str:
    """A file name for a data sample: its point cloud's stem (``scene0000_00``, a nuScenes token's file), else its
    sample index."""
    meta = sample.metainfo if hasattr(sample, "metainfo") else {}
    path = meta.get("lidar_path") or meta.get("pts_filename")
    if path:
        return Path(str(path)).name.split(".")[0]
    return f"sample_{meta.get('sample_idx', fallback):06d}"


@HOOKS.register_module()
class SavePredictionsHook(Hook):
    """Write each test sample's prediction to ``out_dir`` (``tools/test.py --out DIR``) and, after the test,
    the metrics as ``metrics.json``.

    Segmentation: ``<scene>.npy``, the predicted label (or cluster id) per input point, int64 ``[N]``.
    Detection: ``<sample>.npz`` with ``boxes [M, 9]`` (x, y, z, l, w, h, yaw, vx, vy; LiDAR frame, geometric
    centre), ``scores [M]``, ``labels [M]`` (indices into the dataset's classes). Every file is written atomically.
    """

    priority = "LOW"

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.count = 0

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        for sample in outputs or []:
            name = _sample_name(sample, self.count)
            self.count += 1
            if "pred_pts_seg" in sample:
                labels = sample.pred_pts_seg.pts_semantic_mask.cpu().numpy()
                with atomic_write(osp.join(self.out_dir, f"{name}.npy")) as tmp:
                    with open(tmp, "wb") as f:
                        np.save(f, labels.astype(np.int64))
            elif "pred_instances_3d" in sample:
                pred = sample.pred_instances_3d
                with atomic_write(osp.join(self.out_dir, f"{name}.npz")) as tmp:
                    with open(tmp, "wb") as f:
                        np.savez(f, boxes=pred.bboxes_3d.tensor.cpu().numpy(),
                                 scores=pred.scores_3d.cpu().numpy(), labels=pred.labels_3d.cpu().numpy())

    def after_test_epoch(self, runner, metrics=None) -> None:
        with atomic_write(osp.join(self.out_dir, "metrics.json")) as tmp:
            Path(tmp).write_text(json.dumps({k: float(v) for k, v in (metrics or {}).items()}, indent=1))
        runner.logger.info(f"SavePredictionsHook: {self.count} predictions and metrics.json in {self.out_dir}")


@HOOKS.register_module()
class PredictionPicturesHook(Hook):
    """Top-view pictures of predictions beside the ground truth, one PNG per sample.

    Segmentation: the points coloured by the labels and by the prediction, side by side, ceiling left out
    (``plot_bev_labels``; an unsupervised model's prediction is its cluster ids). Detection: GT boxes dashed,
    predicted boxes in class colours over the LiDAR points (``plot_bev_detections``).

    Args:
        num_samples: pictures per validation (the first samples of the val set; -1: all).
        out_dir: folder of the test pictures (``tools/test.py --show-dir``); validation pictures go to
            ``<work_dir>/pictures/<iter_N | epoch_N>/``.
        stages: ``"val"`` and / or ``"test"``.
    """

    priority = "LOW"

    def __init__(self, num_samples: int = 2, out_dir: str = None, stages=("val",)):
        self.num_samples, self.out_dir, self.stages = num_samples, out_dir, tuple(stages)
        self.count = 0

    def before_val_epoch(self, runner) -> None:
        self.count = 0

    def before_test_epoch(self, runner) -> None:
        self.count = 0

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if "val" in self.stages:
            by_epoch = isinstance(getattr(runner, "_train_loop", None), EpochBasedTrainLoop)
            when = f"epoch_{runner.epoch}" if by_epoch else f"iter_{runner.iter}"
            self._draw(runner, runner.val_dataloader, data_batch, outputs,
                       osp.join(runner.work_dir, "pictures", when))

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if "test" in self.stages:
            self._draw(runner, runner.test_dataloader, data_batch, outputs,
                       self.out_dir or osp.join(runner.work_dir, "pictures", "test"))

    def _draw(self, runner, dataloader, data_batch, outputs, folder: str) -> None:
        from pc_kd.visualization import cutaway_mask, plot_bev_detections, plot_bev_labels

        classes = list(dataloader.dataset.metainfo.get("classes", ()))
        for i, sample in enumerate(outputs or []):
            if 0 <= self.num_samples <= self.count:
                return
            points = data_batch["inputs"]["points"][i]
            points = (points.cpu() if hasattr(points, "cpu") else torch.as_tensor(points)).numpy()
            name = _sample_name(sample, self.count)
            self.count += 1
            png = osp.join(folder, f"{name}.png")
            if "pred_pts_seg" in sample and "gt_pts_seg" in sample:
                keep = cutaway_mask(points, "top")  # the ceiling left out, as in the 3D renders
                gt = sample.gt_pts_seg.pts_semantic_mask.cpu().numpy()[keep]
                pred = sample.pred_pts_seg.pts_semantic_mask.cpu().numpy()[keep]
                plot_bev_labels(points[keep], [gt, pred], [f"{name}: ground truth", "prediction"], classes, png)
            elif "pred_instances_3d" in sample and "gt_instances_3d" in sample:
                gt, pred = sample.gt_instances_3d, sample.pred_instances_3d
                plot_bev_detections(points, gt.bboxes_3d, gt.labels_3d.cpu().numpy(), pred.bboxes_3d,
                                    pred.labels_3d.cpu().numpy(), pred.scores_3d.cpu().numpy(), classes, png,
                                    title=f"{name}: ground truth (dashed) and predictions")
