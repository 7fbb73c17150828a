"""Loading distillation targets and super-points saved by tools/fuse_features.py / make_superpoints.py."""
from pathlib import Path

import numpy as np

from pc_kd.registry import TRANSFORMS
from pc_kd.utils.io import require_file


def _scene_file(results, folder, suffix):
    return Path(folder) / f"{Path(results['lidar_path']).stem}{suffix}"


@TRANSFORMS.register_module()
class LoadFusedFeatures:
    """Add ``fused_feats [N, C]`` float32 and ``fused_count [N]`` from ``<feature_dir>/<scene>.npz``."""

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
        results["fused_feats"] = feats.astype(np.float32)
        results["fused_count"] = count.astype(np.int64)
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
