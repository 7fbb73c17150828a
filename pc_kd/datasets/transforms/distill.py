"""Loading distillation targets and super-points saved by tools/fuse_features.py / make_superpoints.py."""
from pathlib import Path

import numpy as np

from pc_kd.registry import TRANSFORMS
from pc_kd.utils.io import require_file


def _scene_file(results, folder, suffix):
    return Path(folder) / f"{Path(results['lidar_path']).stem}{suffix}"


@TRANSFORMS.register_module()
class LoadFusedFeatures:
    """Add ``teacher_feats [N, C]`` and ``teacher_count [N]`` (views per point) from ``<feature_dir>/<scene>.npz``
    (its arrays ``feats`` and ``count``, as tools/fuse_features.py writes them). The features keep the dtype they
    are stored in (float16 from the tool): a worker holds, and a batch carries, half the bytes of a float32 copy;
    the distiller casts each batch to float32 on its device."""

    def __init__(self, feature_dir: str):
        self.feature_dir = feature_dir

    def __call__(self, results: dict) -> dict:
        path = require_file(_scene_file(results, self.feature_dir, ".npz"), "fused feature file "
                            "(run tools/fuse_features.py)")
        data = np.load(path)
        feats, count = data["feats"], data["count"]
        n = results.get("num_points", len(results.get("points", feats)))
        if len(feats) != n or len(count) != n:
            raise ValueError(f"fused feature file {path}: {len(feats)} feature rows for {n} points in "
                             f"{results['lidar_path']}; re-run tools/fuse_features.py for this scene")
        if feats.ndim != 2 or not np.issubdtype(feats.dtype, np.floating):
            raise ValueError(f"fused feature file {path}: 'feats' must be a floating-point [N, C] array, got "
                             f"{feats.dtype} {feats.shape}; re-run tools/fuse_features.py for this scene")
        results["teacher_feats"] = feats
        results["teacher_count"] = count.astype(np.int64)
        return results


@TRANSFORMS.register_module()
class LoadSuperpoints:
    """Add ``superpoints [N]`` int64 from ``<superpoint_dir>/<scene>.npy`` (tools/make_superpoints.py)."""

    def __init__(self, superpoint_dir: str):
        self.superpoint_dir = superpoint_dir

    def __call__(self, results: dict) -> dict:
        path = require_file(_scene_file(results, self.superpoint_dir, ".npy"),
                            "super-point file (run tools/make_superpoints.py)")
        labels = np.load(path).astype(np.int64)
        n = results.get("num_points", len(labels))
        if len(labels) != n:
            raise ValueError(f"super-point file {path}: {len(labels)} labels for {n} points")
        results["superpoints"] = labels
        return results


@TRANSFORMS.register_module()
class LoadPosedFrames:
    """Add the scene's posed frames for a teacher that runs inside the training step (online distillation):
    ``frame_images [V, 3, H, W]`` float 0..1, ``frame_lidar2img [V, 4, 4]`` float64 and ``frame_depth
    [V, H, W]`` (metres, when every frame has a depth image). Put it before geometric augmentations, which
    then update ``frame_lidar2img``.

    Args:
        frame_step: keep every k-th frame; max_frames: then at most this many, evenly spread.
    """

    def __init__(self, frame_step: int = 1, max_frames: int = None, with_depth: bool = True):
        self.frame_step, self.max_frames, self.with_depth = frame_step, max_frames, with_depth

    def __call__(self, results: dict) -> dict:
        from pc_kd.projection.fusion import load_frames

        frames = results.get("images", [])
        if self.max_frames and len(frames[::self.frame_step]) > self.max_frames:
            keep = np.linspace(0, len(frames[::self.frame_step]) - 1, self.max_frames).round().astype(int)
            frames = [frames[::self.frame_step][i] for i in keep]
            step = 1
        else:
            step = self.frame_step
        images, lidar2img, depth = load_frames(frames, Path(results["lidar_path"]).stem, step, self.with_depth)
        results.update(frame_images=images, frame_lidar2img=lidar2img, frame_depth=depth)
        return results
