"""Super-voxels: quality on the real ScanNet scene against a plain voxel grid, and speed at 1M points; hard
voxelization speed against spconv's PointToVoxel.

    PC_KD_REAL_DATA=../shared/realdata python benchmarks/bench_supervoxels.py [--points 1000000]

Purity: the share of annotated points whose ScanNet-20 label equals the majority label of their segment
(scene0000_00, 81,369 vertices). Times are medians of --repeats runs after a warm-up run. Prints JSON.
"""
import argparse
import os
from pathlib import Path

import numpy as np
import torch
from common import emit, machine, timed

from pc_kd.datasets.synthetic import make_indoor_scene
from pc_kd.structures.class_names import SCANNET20_NYU40_IDS, label_mapping
from pc_kd.utils.io import read_bin
from pc_kd.voxel import supervoxels, voxelize


def purity(labels: np.ndarray, semantic: np.ndarray) -> float:
    annotated = semantic != 255
    conf = np.zeros((int(labels.max()) + 1, 256), np.int64)
    np.add.at(conf, (labels[annotated], semantic[annotated]), 1)
    return float(conf.max(1).sum() / annotated.sum())


def quality(root: Path, repeats: int) -> dict:
    scene = root / "scannet_scene0000_00"
    verts = read_bin(scene / "scene0000_00_vert_unaligned.bin", np.float32, 6)
    sem = label_mapping(SCANNET20_NYU40_IDS)[np.load(scene / "scene0000_00_sem_label_all.npy").astype(np.int64)]
    grid, ours = [], []
    for size in (0.3, 0.4, 0.5):
        labels = voxelize(torch.from_numpy(verts[:, :3]).double(), size).point2voxel.numpy()
        grid.append(dict(voxel_size=size, segments=int(labels.max()) + 1, purity=purity(labels, sem)))
    for seed in (0.4, 0.42, 0.45, 0.5, 0.6):
        seconds, _, labels = timed(lambda: supervoxels(verts[:, :3], verts[:, 3:], voxel_size=0.05, seed_size=seed),
                                   "cpu", repeats)
        ours.append(dict(seed_size=seed, voxel_size=0.05, segments=int(labels.max()) + 1,
                         purity=purity(labels, sem), seconds=seconds))
    return dict(scene="scene0000_00", points=len(verts), grid=grid, supervoxels=ours)


def speed(n: int, repeats: int) -> dict:
    scene = make_indoor_scene(0, num_points=n)
    pts, rgb = scene.points[:, :3].astype(np.float64), scene.points[:, 3:]
    t_sv, _, labels = timed(lambda: supervoxels(pts, rgb, voxel_size=0.05, seed_size=0.45), "cpu", repeats)
    pts_t = torch.from_numpy(scene.points[:, :4].copy())
    rng = [float(v) for v in (*pts.min(0) - 0.01, *pts.max(0) + 0.01)]
    t_ours, _, vox = timed(lambda: voxelize(pts_t, 0.05, rng, mode="hard", max_points_per_voxel=32), "cpu", repeats)
    out = dict(points=n, supervoxel_seconds=t_sv, supervoxel_segments=int(labels.max()) + 1,
               voxels=len(vox.coords), pc_kd_voxelize_points_per_s=n / t_ours)
    try:
        from spconv.pytorch.utils import PointToVoxel
    except ImportError:
        out["point_to_voxel"] = "spconv not installed"
        return out
    gen = PointToVoxel(vsize_xyz=[0.05] * 3, coors_range_xyz=rng, num_point_features=4,
                       max_num_voxels=len(vox.coords) + 1, max_num_points_per_voxel=32)
    t_ref, _, _ = timed(lambda: gen(pts_t), "cpu", repeats)
    out.update(point_to_voxel_points_per_s=n / t_ref, point_to_voxel_over_pc_kd_time=t_ref / t_ours)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    result = dict(benchmark="supervoxels", machine=machine(), speed=speed(args.points, args.repeats))
    root = os.environ.get("PC_KD_REAL_DATA")
    if root and Path(root).is_dir():
        result["quality"] = quality(Path(root), args.repeats)
    else:
        result["quality"] = "set PC_KD_REAL_DATA to the real samples to measure purity"
    emit(result, args.json)


if __name__ == "__main__":
    main()
