"""Geometric augmentation of points (and boxes) in the point frame."""
import os

import numpy as np
import torch

from pc_kd.registry import TRANSFORMS

from ..samplers import SampleDraw


def _map_ints(state: dict, cast) -> dict:
    """A numpy bit generator's state with its integer fields converted by ``cast`` (str <-> int)."""
    return {k: _map_ints(v, cast) if isinstance(v, dict) else (cast(v) if k != "bit_generator" else v)
            for k, v in state.items()}


@TRANSFORMS.register_module()
class RandomRotScaleFlip:
    """Rotate about z by U(rot_range) radians, scale by U(scale_range), mirror x with probability flip_x_prob
    (default 0: never) and y with probability flip_prob.

    Applies the same similarity to ``points[:, :3]`` and ``gt_bboxes_3d`` (centres, sizes, yaw, velocities, by
    :meth:`Boxes3D.similarity`). The matrix used is composed into ``results[MATRIX_KEY]`` (4x4, original frame
    -> augmented frame) so image-aware steps can follow it; posed frames' ``frame_lidar2img`` follow at once.

    Draws come from one generator per process, made on first use: in the main process from numpy's global
    state (which the Runner's ``randomness=dict(seed=...)`` sets), in a data-loader worker from that worker's
    numpy state (mmengine's ``worker_init_fn`` seeds it per worker) and torch's per-worker, per-epoch seed. So
    workers draw different augmentations, re-created workers do not replay the last epoch, and a seeded run
    repeats exactly. ``seed`` fixes the base instead of numpy's state. :meth:`random_state` and
    :meth:`set_random_state` carry the generator through a checkpoint (:class:`pc_kd.engine.RandomStateHook`).
    With :class:`pc_kd.datasets.EpochSeededSampler` each sample draws instead from a generator of (``seed``,
    the sampler's seed, epoch, sample index), the same whichever worker loads it and after a resume.
    """

    MATRIX_KEY = "aug_matrix"

    def __init__(self, rot_range=(-np.pi, np.pi), scale_range=(0.9, 1.1), flip_prob=0.5, seed=None, flip_x_prob=0.0):
        self.rot_range, self.scale_range, self.flip_prob, self.seed = rot_range, scale_range, flip_prob, seed
        self.flip_x_prob = flip_x_prob
        self._rng, self._owner = None, None

    @staticmethod
    def _current_owner():
        worker = torch.utils.data.get_worker_info()
        return os.getpid(), None if worker is None else worker.seed

    def random_state(self):
        """This process's generator state (its 128-bit integers as strings, plain values a ``weights_only``
        checkpoint holds), or None before the first draw."""
        if self._rng is None or self._owner != self._current_owner():
            return None
        return _map_ints(self._rng.bit_generator.state, str)

    def set_random_state(self, state) -> None:
        """Continue from ``state`` (:meth:`random_state`); None: make the generator afresh at the next draw."""
        self._rng, self._owner = None, None
        if state is not None:
            self._rng, self._owner = np.random.default_rng(), self._current_owner()
            self._rng.bit_generator.state = _map_ints(state, int)

    def _generator(self) -> np.random.Generator:
        owner = self._current_owner()
        if self._owner != owner:
            worker_seed = owner[1]
            base = np.random.randint(2 ** 31) if self.seed is None else self.seed
            self._rng = np.random.default_rng([base] if worker_seed is None else [base, worker_seed % 2 ** 63])
            self._owner = owner
        return self._rng

    def _draw_matrix(self, sample_idx=None) -> np.ndarray:
        if isinstance(sample_idx, SampleDraw):  # EpochSeededSampler: one generator per (seed, epoch, sample)
            base = [] if self.seed is None else [int(self.seed)]
            rng = np.random.default_rng(base + [sample_idx.seed % 2 ** 63, sample_idx.epoch, sample_idx.key])
        else:
            rng = self._generator()
        angle = rng.uniform(*self.rot_range)
        scale = rng.uniform(*self.scale_range)
        # no draw for a flip in x that can never happen, so y-only instances keep their sequence of draws
        flip_x = self.flip_x_prob > 0 and rng.random() < self.flip_x_prob
        flip_y = rng.random() < self.flip_prob
        c, s = np.cos(angle), np.sin(angle)
        mat = np.eye(4)
        mat[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) * scale
        if flip_x:
            mat[0] *= -1
        if flip_y:
            mat[1] *= -1
        return mat

    def __call__(self, results: dict) -> dict:
        mat = self._draw_matrix(results.get("sample_idx"))
        points = results["points"]
        points[:, :3] = (points[:, :3].astype(np.float64) @ mat[:3, :3].T).astype(points.dtype)
        if "gt_bboxes_3d" in results:
            results["gt_bboxes_3d"] = results["gt_bboxes_3d"].similarity(mat)
        if "frame_lidar2img" in results:  # posed frames keep seeing the (moved) points where they were
            results["frame_lidar2img"] = results["frame_lidar2img"] @ torch.from_numpy(np.linalg.inv(mat))
        results[self.MATRIX_KEY] = mat @ results.get(self.MATRIX_KEY, np.eye(4))
        return results
