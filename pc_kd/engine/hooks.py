"""Runner hooks."""
import json
import os.path as osp
from pathlib import Path

import numpy as np
from mmengine.hooks import Hook

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
                labels = np.asarray(sample.pred_pts_seg.pts_semantic_mask.cpu() if hasattr(
                    sample.pred_pts_seg.pts_semantic_mask, "cpu") else sample.pred_pts_seg.pts_semantic_mask)
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
