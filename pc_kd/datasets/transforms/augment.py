"""Geometric augmentation of points (and boxes) in the point frame."""
import numpy as np
import torch

from pc_kd.registry import TRANSFORMS
from pc_kd.structures import Boxes3D


@TRANSFORMS.register_module()
class RandomRotScaleFlip:
    """Rotate about z by U(rot_range) radians, scale by U(scale_range), mirror y with probability flip_prob.

    Applies the same similarity to ``points[:, :3]`` and ``gt_bboxes_3d``. The matrix used is stored as
    ``results['aug_matrix']`` (4x4, original frame -> augmented frame) so image-aware steps can follow it.
    Without ``seed`` the generator is seeded from numpy's global state, which the Runner's
    ``randomness=dict(seed=...)`` sets, so a seeded run augments the same way every time.
    """

    def __init__(self, rot_range=(-np.pi, np.pi), scale_range=(0.9, 1.1), flip_prob=0.5, seed=None):
        self.rot_range, self.scale_range, self.flip_prob = rot_range, scale_range, flip_prob
        self.rng = np.random.default_rng(np.random.randint(2 ** 31) if seed is None else seed)

    def __call__(self, results: dict) -> dict:
        angle = self.rng.uniform(*self.rot_range)
        scale = self.rng.uniform(*self.scale_range)
        flip = self.rng.random() < self.flip_prob
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
