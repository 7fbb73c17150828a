"""Points -> voxels reduction: pc_kd's scatter_reduce_points against torch.Tensor.scatter_reduce_ on the
same data, one run.

    python benchmarks/bench_voxel_scatter.py [--points 1000000] [--voxels 200000] [--channels 64]

Prints JSON: seconds per reduction for both, ratio (torch scatter_reduce_ / pc_kd), peak memory beyond the
inputs and the largest difference.
"""
import argparse

import torch

from common import emit, machine, timed
from pc_kd.ops import scatter_reduce_points


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--voxels", type=int, default=200_000)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(args.points, args.channels, generator=g).to(args.device)
    index = torch.randint(0, args.voxels, (args.points,), generator=g).to(args.device)
    rows = []
    for reduce, torch_name in (("mean", "mean"), ("max", "amax"), ("sum", "sum")):
        t_ours, m_ours, ours = timed(lambda: scatter_reduce_points(feats, index, args.voxels, reduce), args.device,
                                     args.repeats)

        def anchor():
            out = feats.new_zeros(args.voxels, args.channels)
            return out.scatter_reduce_(0, index[:, None].expand(-1, args.channels), feats, reduce=torch_name,
                                       include_self=False)

        t_ref, m_ref, ref = timed(anchor, args.device, args.repeats)
        rows.append(dict(reduce=reduce, points=args.points, voxels=args.voxels, channels=args.channels,
                         pc_kd_s=t_ours, pc_kd_peak_bytes=m_ours, scatter_reduce_s=t_ref, scatter_reduce_peak_bytes=m_ref,
                         scatter_reduce_over_pc_kd=t_ref / t_ours, max_abs_diff=float((ours - ref).abs().max())))
    emit(dict(benchmark="voxel_scatter", device=args.device, machine=machine(), results=rows), args.json)


if __name__ == "__main__":
    main()
