"""Hard voxelization on several point distributions: pc_kd's ``voxelize`` against spconv's C++ ``PointToVoxel``, same
points, same run.

    python benchmarks/bench_voxelize.py [--points 1000000] [--max-points 32] [--repeats 5] [--cases room uniform ...]

Cases (each with and without a voxel cap):
- ``room``: a 1M-point synthetic room at 5 cm (66k voxels, a dense grid: pc_kd's dense cell table);
- ``uniform``: 1M points spread uniformly over an 8 m cube at 5 cm (4.1M cells, most voxels hold 1-2 points);
  capped at 600,000 voxels, as a detector's ``max_voxels`` is;
- ``outdoor``: ten aggregated 32-beam sweeps of a synthetic street at 0.1 m on nuScenes' range (+-51.2 m, -5..3 m:
  84M cells for about 0.6M points, pc_kd's hash table).

Per case: pc_kd's default CPU path, pc_kd's sorting path (``backend="torch"``, what GPUs take), and spconv's
``PointToVoxel`` (which fills buffers it allocated once, in its constructor; pc_kd allocates its output in every
call); median after a warm-up, peak memory, the voxels only one of them has and those whose point counts differ.
JSON with ``point_to_voxel_over_pc_kd`` per case (> 1: pc_kd is faster).
"""
import argparse
import os
import sys

import numpy as np
import torch

from common import emit, machine, timed

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def _room(n: int):
    from pc_kd.datasets.synthetic.indoor import make_indoor_scene

    scene = make_indoor_scene(0, num_points=n)
    points = torch.from_numpy(scene.points[:, :4].astype(np.float32).copy())
    lo, hi = scene.points[:, :3].min(0) - 0.01, scene.points[:, :3].max(0) + 0.01
    return points, 0.05, [float(v) for v in (*lo, *hi)]


def _uniform(n: int):
    g = torch.Generator().manual_seed(0)
    points = torch.cat([torch.rand(n, 3, generator=g) * 8.0, torch.rand(n, 1, generator=g)], 1)
    return points, 0.05, [0.0, 0.0, 0.0, 8.0, 8.0, 8.0]


def _outdoor(n: int):
    from pc_kd.datasets.synthetic.driving import make_driving_scene, simulate_lidar

    scene = make_driving_scene(0)
    sweeps = [simulate_lidar(scene, 0, azimuth_step_deg=0.2, time_offset=-0.05 * k)[0][:, :4] for k in range(10)]
    points = torch.from_numpy(np.concatenate(sweeps).astype(np.float32))
    return points, 0.1, [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0]


CASES = {"room": _room, "uniform": _uniform, "outdoor": _outdoor}


def _compare(vox, ref_coords, ref_counts) -> dict:
    ours = dict(zip(map(tuple, vox.spconv_indices()[:, 1:].tolist()), vox.num_points.tolist()))
    theirs = dict(zip(map(tuple, ref_coords.tolist()), ref_counts.tolist()))
    return dict(voxels_only_pc_kd=len(set(ours) - set(theirs)), voxels_only_point_to_voxel=len(set(theirs) - set(ours)),
                # a point on a voxel boundary: spconv divides in float32, pc_kd in float64
                voxels_with_other_point_count=sum(ours[k] != theirs[k] for k in set(ours) & set(theirs)))


def run_case(name: str, points, voxel: float, point_range, max_voxels, max_points: int, repeats: int) -> dict:
    from pc_kd.voxel import voxelize

    hard = dict(mode="hard", max_points_per_voxel=max_points, max_voxels=max_voxels)
    t_cpu, m_cpu, vox = timed(lambda: voxelize(points, voxel, point_range, **hard), "cpu", repeats)
    t_sort, m_sort, vox_sort = timed(lambda: voxelize(points, voxel, point_range, backend="torch", **hard), "cpu",
                                     repeats)
    row = dict(case=name, points=len(points), voxel=voxel, max_voxels=max_voxels, voxels=len(vox.coords),
               grid=list(vox.spatial_shape), pc_kd_s=t_cpu, pc_kd_peak_bytes=m_cpu, pc_kd_sorting_path_s=t_sort,
               pc_kd_sorting_path_peak_bytes=m_sort,
               same_as_sorting_path=all(torch.equal(a, b) for a, b in zip(vox[:4], vox_sort[:4]))
               and torch.equal(vox.voxels, vox_sort.voxels))
    try:
        from spconv.pytorch.utils import PointToVoxel
    except ImportError:
        row["point_to_voxel"] = "spconv not installed"
        return row
    cap = max_voxels if max_voxels is not None else len(points)
    gen = PointToVoxel(vsize_xyz=[voxel] * 3, coors_range_xyz=point_range, num_point_features=points.shape[1],
                       max_num_voxels=cap, max_num_points_per_voxel=max_points)
    t_ref, m_ref, (_, ref_coords, ref_counts) = timed(lambda: gen(points), "cpu", repeats)
    row.update(point_to_voxel_s=t_ref, point_to_voxel_peak_bytes=m_ref, point_to_voxel_over_pc_kd=t_ref / t_cpu,
               point_to_voxel_over_pc_kd_sorting_path=t_ref / t_sort, **_compare(vox, ref_coords, ref_counts))
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000, help="points of the room and uniform cases")
    parser.add_argument("--max-points", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    rows = []
    for name in args.cases:
        points, voxel, point_range = CASES[name](args.points)
        uncapped = run_case(name, points, voxel, point_range, None, args.max_points, args.repeats)
        cap = 600_000 if name == "uniform" else uncapped["voxels"] // 2
        rows += [uncapped, run_case(name, points, voxel, point_range, cap, args.max_points, args.repeats)]
    result = dict(benchmark="voxelize", machine=machine(), max_points_per_voxel=args.max_points, cases=rows)
    emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
