"""BEV pooling: pc_kd's bev_pool against LSS's QuickCumsum and a naive index_add, same inputs, one run.

    python benchmarks/bench_bev_pool.py [--batch 1] [--device cpu|cuda] [--repeats 5]

BEVDepth-like set-up: 6 surround cameras, D = 59 depth bins (1-60 m), 16 x 44 feature maps (256 x 704 images,
stride 16), C = 80, a 128 x 128 BEV grid of 0.8 m cells. Prints JSON: forward and forward+backward seconds
(median of the repeats after a warm-up call), ratios (anchor / pc_kd), peak memory beyond the inputs next to
the frustum-feature tensor's size, and the largest differences between the outputs and between the gradients
of depth and context.
"""
import argparse

import numpy as np
import torch

from common import emit, machine, timed
from pc_kd.datasets.synthetic.driving import CAMERA_YAWS, cam2ego_matrix
from pc_kd.ops import BEVGrid, bev_pool
from pc_kd.ops.bev_pool import assign_cells

GRID = BEVGrid(x_range=(-51.2, 51.2), y_range=(-51.2, 51.2), z_range=(-10.0, 10.0), cell=(0.8, 0.8))


def make_inputs(batch, device, d=59, h=16, w=44, c=80, image_hw=(256, 704), seed=0):
    """Frustum of a 6-camera rig (ego frame) and random depth distributions / context features."""
    H, W = image_hw
    K = np.array([[0.55 * W, 0, W / 2], [0, 0.55 * W, H / 2], [0, 0, 1.0]])
    us = (np.arange(w) + 0.5) * W / w
    vs = (np.arange(h) + 0.5) * H / h
    depths = np.arange(1.0, 1.0 + d)
    uu, vv = np.meshgrid(us, vs)
    rays = np.stack([(uu - K[0, 2]) / K[0, 0], (vv - K[1, 2]) / K[1, 1], np.ones_like(uu)], -1)  # [h, w, 3]
    frustum = []
    for yaw in CAMERA_YAWS.values():
        cam2ego = cam2ego_matrix(yaw)
        pts = depths[:, None, None, None] * rays[None]  # [D, h, w, 3] camera frame
        frustum.append(pts @ cam2ego[:3, :3].T + cam2ego[:3, 3])
    xyz = torch.from_numpy(np.stack(frustum)).float()[None].expand(batch, -1, -1, -1, -1, -1).contiguous()
    g = torch.Generator().manual_seed(seed)
    depth = torch.rand(batch, 6, d, h, w, generator=g).softmax(2)
    context = torch.randn(batch, 6, c, h, w, generator=g)
    return depth.to(device), context.to(device), xyz.to(device)


class QuickCumsum(torch.autograd.Function):
    """LSS's cumulative-sum trick: sum the sorted rows of equal rank by differences of a cumsum."""

    @staticmethod
    def forward(ctx, x, ranks):
        x = x.cumsum(0)
        kept = torch.ones(x.shape[0], device=x.device, dtype=torch.bool)
        kept[:-1] = ranks[1:] != ranks[:-1]
        x, ranks = x[kept], ranks[kept]
        x = torch.cat((x[:1], x[1:] - x[:-1]))
        ctx.save_for_backward(kept)
        return x, ranks

    @staticmethod
    def backward(ctx, grad_x, _grad_ranks):
        (kept,) = ctx.saved_tensors
        back = torch.cumsum(kept, 0)
        back[kept] -= 1
        return grad_x[back], None


def lss_quickcumsum(depth, context, xyz):
    b = depth.shape[0]
    H, W = GRID.shape
    x = depth[..., None] * context.permute(0, 1, 3, 4, 2)[:, :, None]  # [B, N, D, h, w, C] frustum features
    c = x.shape[-1]
    cell = assign_cells(xyz, GRID).cell.reshape(-1)
    x = x.reshape(-1, c)
    kept = cell >= 0
    x, ranks = x[kept], cell[kept]
    order = ranks.argsort()
    x, ranks = QuickCumsum.apply(x[order], ranks[order])
    out = torch.zeros(b * H * W, c, device=x.device, dtype=x.dtype)
    out[ranks] = x
    return out.view(b, H, W, c).permute(0, 3, 1, 2)


def naive_index_add(depth, context, xyz):
    b = depth.shape[0]
    H, W = GRID.shape
    x = depth[..., None] * context.permute(0, 1, 3, 4, 2)[:, :, None]
    c = x.shape[-1]
    cell = assign_cells(xyz, GRID).cell.reshape(-1)
    kept = cell >= 0
    out = torch.zeros(b * H * W, c, device=x.device, dtype=x.dtype).index_add(0, cell[kept], x.reshape(-1, c)[kept])
    return out.view(b, H, W, c).permute(0, 3, 1, 2)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    depth, context, xyz = make_inputs(args.batch, args.device)
    frustum_bytes = depth.numel() * context.shape[2] * 4
    grad = torch.randn(args.batch, context.shape[2], *GRID.shape, device=args.device)
    methods = dict(pc_kd=lambda d, c: bev_pool(d, c, xyz, GRID), quickcumsum=lambda d, c: lss_quickcumsum(d, c, xyz),
                   index_add=lambda d, c: naive_index_add(d, c, xyz))
    row = dict(batch=args.batch, cameras=6, depth_bins=depth.shape[2], feat_hw=list(depth.shape[3:]),
               channels=context.shape[2], bev_hw=list(GRID.shape), frustum_feature_bytes=frustum_bytes,
               in_grid_fraction=float((assign_cells(xyz, GRID).cell >= 0).float().mean()))
    outputs, grads = {}, {}
    for name, fn in methods.items():
        with torch.no_grad():
            t_fwd, m_fwd, out = timed(lambda: fn(depth, context), args.device, args.repeats)
        outputs[name] = out

        def fwd_bwd():
            d, c = depth.clone().requires_grad_(True), context.clone().requires_grad_(True)
            (fn(d, c) * grad).sum().backward()
            return d.grad, c.grad

        t_fb, m_fb, grads[name] = timed(fwd_bwd, args.device, args.repeats)
        row.update({f"{name}_forward_s": t_fwd, f"{name}_forward_peak_bytes": m_fwd,
                    f"{name}_fwd_bwd_s": t_fb, f"{name}_fwd_bwd_peak_bytes": m_fb})
    for name in ("quickcumsum", "index_add"):
        row[f"{name}_over_pc_kd_forward"] = row[f"{name}_forward_s"] / row["pc_kd_forward_s"]
        row[f"{name}_over_pc_kd_fwd_bwd"] = row[f"{name}_fwd_bwd_s"] / row["pc_kd_fwd_bwd_s"]
        row[f"max_abs_diff_vs_{name}"] = float((outputs[name] - outputs["pc_kd"]).abs().max())
        for which, ours, theirs in zip(("depth", "context"), grads["pc_kd"], grads[name]):
            row[f"max_abs_grad_{which}_diff_vs_{name}"] = float((theirs - ours).abs().max())
    row["pc_kd_forward_peak_over_frustum_features"] = row["pc_kd_forward_peak_bytes"] / frustum_bytes
    row["pc_kd_fwd_bwd_peak_over_frustum_features"] = row["pc_kd_fwd_bwd_peak_bytes"] / frustum_bytes
    emit(dict(benchmark="bev_pool", device=args.device, machine=machine(), results=[row]), args.json)


if __name__ == "__main__":
    main()
