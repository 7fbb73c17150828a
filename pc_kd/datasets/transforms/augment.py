"""Geometric augmentation of points (and boxes) in the point frame."""
import os

import numpy as np
import torch

from pc_kd.registry import TRANSFORMS
from pc_kd.structures import Boxes3D


@TRANSFORMS.register_module()
class RandomRotScaleFlip:
    """Rotate about z by U(rot_range) radians, scale by U(scale_range), mirror y with probability flip_prob.

    Applies the same similarity to ``points[:, :3]`` and ``gt_bboxes_3d``. The matrix used is stored as
    ``results['aug_matrix']`` (4x4, original frame -> augmented frame) so image-aware steps can follow it.

    Draws come from one generator per process, made on first use: in the main process from numpy's global
    state (which the Runner's ``randomness=dict(seed=...)`` sets), in a data-loader worker from that worker's
    numpy state (mmengine's ``worker_init_fn`` seeds it per worker) and torch's per-worker, per-epoch seed. So
    workers draw different augmentations, re-created workers do not replay the last epoch, and a seeded run
    repeats exactly. ``seed`` fixes the base instead of numpy's state.
    """

    def __init__(self, rot_range=(-np.pi, np.pi), scale_range=(0.9, 1.1), flip_prob=0.5, seed=None):
        self.rot_range, self.scale_range, self.flip_prob, self.seed = rot_range, scale_range, flip_prob, seed
        self._rng, self._owner = None, None

    def _generator(self) -> np.random.Generator:
        worker = torch.utils.data.get_worker_info()
        owner = (os.getpid(), None if worker is None else worker.seed)
        if self._owner != owner:
            base = np.random.randint(2 ** 31) if self.seed is None else self.seed
            self._rng = np.random.default_rng([base] if worker is None else [base, worker.seed % 2 ** 63])
            self._owner = owner
        return self._rng

    def __call__(self, results: dict) -> dict:
        rng = self._generator()
        angle = rng.uniform(*self.rot_range)
        scale = rng.uniform(*self.scale_range)
        flip = rng.random() < self.flip_prob
        c, s = np.cos(angle), np.sin(angle)
        mat = np.eye(4)
        mat[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) * scale
        if flip:
            mat[1] *= -1
        points = results["points"]
        points[:, :3] = (points[:, :3].astype(np.float64) @ mat[:3, :3].T).astype(points.dtype)
        if "gt_bboxes_3d" in results:
            boxes = results["gt_bboxes_3d"].tensor.clone()
            boxes[:, :3] = boxes[:, :3] @ torch.as_tensor(mat[:3, :3]).T.to(boxes)
            boxes[:, 3:6] *= scale
            boxes[:, 6] = (-1 if flip else 1) * (boxes[:, 6] + angle)
            if boxes.shape[1] == 9:
                boxes[:, 7:9] = boxes[:, 7:9] @ torch.as_tensor(mat[:2, :2]).T.to(boxes)
            results["gt_bboxes_3d"] = Boxes3D(boxes)
        if "frame_lidar2img" in results:  # posed frames keep seeing the (moved) points where they were
            results["frame_lidar2img"] = results["frame_lidar2img"] @ torch.from_numpy(np.linalg.inv(mat))
        results["aug_matrix"] = mat @ results.get("aug_matrix", np.eye(4))
        return results
