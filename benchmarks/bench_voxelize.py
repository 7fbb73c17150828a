"""Hard voxelization of a large room: pc_kd's ``voxelize`` against spconv's C++ ``PointToVoxel``, same points, same
run.

    python benchmarks/bench_voxelize.py [--points 1000000] [--voxel 0.05] [--max-points 32] [--repeats 5]

Times (median after a warm-up) pc_kd's default CPU path (a dense cell table when the grid has at most 8 cells per
point, as a room at 5 cm does), pc_kd's sorting path (what it takes for larger grids or on GPUs; forced here with
``max_voxels``), pc_kd's dynamic mode and spconv's ``PointToVoxel`` (which fills buffers it allocated once, in its
constructor; pc_kd allocates its output in every call); counts the voxels only one of them has and those whose point
counts differ, and prints JSON with ``point_to_voxel_over_pc_kd`` (> 1: pc_kd is faster).
"""
import argparse
import os
import sys

import numpy as np
import torch

from common import emit, machine, timed

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def main(argv=None):
    from pc_kd.datasets.synthetic.indoor import make_indoor_scene
    from pc_kd.voxel import voxelize

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--voxel", type=float, default=0.05)
    parser.add_argument("--max-points", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    scene = make_indoor_scene(0, num_points=args.points)
    points = torch.from_numpy(scene.points[:, :4].astype(np.float32).copy())
    lo, hi = scene.points[:, :3].min(0) - 0.01, scene.points[:, :3].max(0) + 0.01
    point_range = [float(v) for v in (*lo, *hi)]
    hard = dict(mode="hard", max_points_per_voxel=args.max_points)
    t_dense, m_dense, vox = timed(lambda: voxelize(points, args.voxel, point_range, **hard), "cpu", args.repeats)
    t_sort, m_sort, vox_sort = timed(lambda: voxelize(points, args.voxel, point_range, max_voxels=len(points), **hard),
                                     "cpu", args.repeats)
    t_dyn, _, _ = timed(lambda: voxelize(points, args.voxel, point_range), "cpu", args.repeats)
    result = dict(benchmark="voxelize", machine=machine(), points=args.points, voxel=args.voxel,
                  max_points_per_voxel=args.max_points, voxels=len(vox.coords), grid=list(vox.spatial_shape),
                  pc_kd_s=t_dense, pc_kd_peak_bytes=m_dense, pc_kd_sorting_path_s=t_sort,
                  pc_kd_sorting_path_peak_bytes=m_sort, pc_kd_dynamic_s=t_dyn,
                  same_as_sorting_path=bool(torch.equal(vox.voxels, vox_sort.voxels)
                                            and torch.equal(vox.point2voxel, vox_sort.point2voxel)))
    try:
        from spconv.pytorch.utils import PointToVoxel
    except ImportError:
        result["point_to_voxel"] = "spconv not installed"
    else:
        gen = PointToVoxel(vsize_xyz=[args.voxel] * 3, coors_range_xyz=point_range, num_point_features=4,
                           max_num_voxels=len(vox.coords) + 1, max_num_points_per_voxel=args.max_points)
        t_ref, m_ref, (ref_voxels, ref_coords, ref_counts) = timed(lambda: gen(points), "cpu", args.repeats)
        ours = dict(zip(map(tuple, vox.spconv_indices()[:, 1:].tolist()), vox.num_points.tolist()))
        theirs = dict(zip(map(tuple, ref_coords.tolist()), ref_counts.tolist()))
        result.update(point_to_voxel_s=t_ref, point_to_voxel_peak_bytes=m_ref,
                      point_to_voxel_over_pc_kd=t_ref / t_dense,
                      point_to_voxel_over_pc_kd_sorting_path=t_ref / t_sort,
                      voxels_only_pc_kd=len(set(ours) - set(theirs)),
                      voxels_only_point_to_voxel=len(set(theirs) - set(ours)),
                      # a point on a voxel boundary: spconv divides in float32, pc_kd in float64
                      voxels_with_other_point_count=sum(ours[k] != theirs[k] for k in set(ours) & set(theirs)))
    emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
