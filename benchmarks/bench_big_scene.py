"""A 10M-point scene on one machine: voxelization, super-voxels and a 100-view back-projection, each with its time
and peak memory, against the size of its points and output.

    python benchmarks/bench_big_scene.py [--rooms 4 4] [--points-per-room 625000] [--views 100] [--channels 64]

The scene is a floor of ``rooms[0] x rooms[1]`` synthetic rooms side by side (``make_indoor_scene``, coloured
points; 16 x 625k = 10M points by default). Stages: hard voxelization at 5 cm, super-voxels (5 cm voxels, 0.45 m
seeds), and back-projection of ``--views`` random feature maps (C = ``--channels``, 60 x 80 cells of 240 x 320
images) from cameras spread over the floor at 1.5 m, looking along it (visibility ``none``: in front and inside
the image; the z-buffer of 10M points per view is a separate cost). Peak memory per stage is the process's peak
RSS beyond what was resident when the stage started (``/proc/self/status``). Prints JSON with, per stage,
seconds, peak bytes and peak / (input + output bytes). The targets (issue "scale"): peak <= 3x points + output
features, super-voxels < 60 s.
"""
import argparse
import math
import os
import sys
import time

import numpy as np
import torch

from common import PeakMemory, emit, machine

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def make_floor(rooms, points_per_room, seed=0):
    """``(xyz float32 [N, 3], rgb uint8 [N, 3])`` of rooms laid side by side on a grid (8 m pitch)."""
    from pc_kd.datasets.synthetic.indoor import make_indoor_scene

    xyz, rgb = [], []
    for i in range(rooms[0]):
        for j in range(rooms[1]):
            room = make_indoor_scene(seed + i * rooms[1] + j, num_points=points_per_room).points
            xyz.append(room[:, :3].astype(np.float32) + np.array([8.0 * i, 8.0 * j, 0.0], np.float32))
            rgb.append(room[:, 3:6].astype(np.uint8))
    return np.concatenate(xyz), np.concatenate(rgb)


def cameras(views, extent, image_hw, seed=0):
    """``lidar2img [V, 4, 4]`` of pinhole cameras at 1.5 m, random positions over the floor and headings."""
    g = np.random.default_rng(seed)
    H, W = image_hw
    K = np.array([[0.9 * W, 0, W / 2, 0], [0, 0.9 * W, H / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    out = []
    for _ in range(views):
        yaw = g.uniform(0, 2 * math.pi)
        fwd = np.array([math.cos(yaw), math.sin(yaw), -0.15])
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        pose = np.eye(4)
        pose[:3, :3] = np.stack([right, np.cross(fwd, right), fwd], 1)
        pose[:3, 3] = [g.uniform(0, extent[0]), g.uniform(0, extent[1]), 1.5]
        out.append(K @ np.linalg.inv(pose))
    return torch.from_numpy(np.stack(out)).float()


def stage(name, fn, input_bytes, result):
    with PeakMemory("cpu") as mem:
        start = time.perf_counter()
        out, output_bytes = fn()
        seconds = time.perf_counter() - start
    result[name] = dict(seconds=seconds, peak_bytes=mem.peak, input_bytes=input_bytes, output_bytes=output_bytes,
                        peak_over_input_plus_output=mem.peak / (input_bytes + output_bytes))
    print(f"{name}: {seconds:.1f} s, peak {mem.peak / 2**30:.2f} GiB", file=sys.stderr)
    return out


def main(argv=None):
    from pc_kd.projection import backproject_features
    from pc_kd.voxel import supervoxels, voxelize

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rooms", type=int, nargs=2, default=(4, 4))
    parser.add_argument("--points-per-room", type=int, default=625_000)
    parser.add_argument("--views", type=int, default=100)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    xyz, rgb = make_floor(args.rooms, args.points_per_room)
    result = dict(benchmark="big_scene", machine=machine(), points=len(xyz), generate_s=time.perf_counter() - start)
    points = torch.from_numpy(np.concatenate([xyz, rgb.astype(np.float32) / 255.0], 1))
    lo, hi = xyz.min(0) - 0.01, xyz.max(0) + 0.01

    def hard():
        vox = voxelize(points, 0.05, [float(v) for v in (*lo, *hi)], mode="hard", max_points_per_voxel=32)
        return vox, sum(t.numel() * t.element_size() for t in (vox.voxels, vox.coords, vox.point2voxel))

    vox = stage("voxelize_hard_5cm", hard, points.numel() * 4, result)
    result["voxels"] = len(vox.coords)
    del vox

    def segments():
        labels = supervoxels(xyz, rgb, voxel_size=0.05, seed_size=0.45)
        return labels, labels.nbytes

    labels = stage("supervoxels", segments, xyz.nbytes + rgb.nbytes, result)
    result["supervoxel_segments"] = int(labels.max()) + 1
    del labels

    feat_hw, image_hw = (60, 80), (240, 320)
    lidar2img = cameras(args.views, hi[:2], image_hw)
    feats = torch.randn(args.views, args.channels, *feat_hw, generator=torch.Generator().manual_seed(0))
    xyz_t = torch.from_numpy(xyz)

    def lift():
        out, count = backproject_features(xyz_t, feats, lidar2img, image_hw, visibility="none", sampling="nearest")
        return (out, count), out.numel() * out.element_size() + count.numel() * count.element_size()

    out, count = stage(f"backproject_{args.views}_views_C{args.channels}", lift,
                       xyz_t.numel() * 4 + feats.numel() * 4, result)
    result["points_seen"] = float((count > 0).float().mean())
    emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
