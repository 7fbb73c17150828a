"""A training step of the nuScenes camera detector config (LSS, ResNet-50, 6 x 256 x 704, D = 112 depth bins)
with the PyTorch twin of bev_pool against the Triton kernel, same inputs, one run.

    python benchmarks/bench_lss_step.py [--batch 4] [--device cuda] [--repeats 3]

Prints JSON: seconds of a forward + backward step per implementation (median after a warm-up), the share of the
step spent in bev_pool (forward and backward, timed apart on the same inputs), peak memory of the step, and the
largest difference between the two implementations' BEV maps and their gradients. The issue's GPU targets:
peak <= 24 GB at batch 4, the Triton kernel equal to the twin and faster than it.
"""
import argparse
import os
import sys

import numpy as np
import torch

from common import emit, machine, timed

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "supervised", "supervised_lss-camera_none_nuscenes.py")


def build(device):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from pc_kd.registry import MODELS

    init_default_scope("pc_kd")
    cfg = Config.fromfile(CONFIG)
    return MODELS.build(cfg.model).to(device).train()


def inputs(batch, device, seed=0):
    """Images, the nuScenes-like rig of the synthetic driving cameras at 256 x 704, LiDAR depth maps, boxes."""
    from mmengine.structures import InstanceData

    from pc_kd.datasets.synthetic.driving import CAMERA_YAWS, cam2ego_matrix
    from pc_kd.structures import Boxes3D, Point3DDataSample

    g = torch.Generator().manual_seed(seed)
    H, W = 256, 704
    K = np.eye(4)
    K[0, 0] = K[1, 1] = 0.55 * W
    K[0, 2], K[1, 2] = W / 2, H / 2
    lidar2img = np.stack([K @ np.linalg.inv(cam2ego_matrix(y)) for y in CAMERA_YAWS.values()])
    samples = []
    for _ in range(batch):
        s = Point3DDataSample(metainfo=dict(lidar2img=lidar2img, bev_aug_matrix=np.eye(4)))
        depth = torch.rand(6, H, W, generator=g) * 50
        depth[torch.rand(6, H, W, generator=g) > 0.05] = 0
        s.depth_maps = depth
        boxes = torch.cat([torch.rand(30, 2, generator=g) * 80 - 40, torch.zeros(30, 1), torch.full((30, 3), 2.0),
                           torch.zeros(30, 3)], 1)
        s.gt_instances_3d = InstanceData(bboxes_3d=Boxes3D(boxes.double()), labels_3d=torch.randint(0, 10, (30,), generator=g))
        samples.append(s)
    data = dict(inputs=dict(points=[torch.rand(1000, 5, generator=g) for _ in range(batch)],
                            imgs=[torch.rand(6, 3, H, W, generator=g) for _ in range(batch)]), data_samples=samples)
    return data


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build(args.device)
    data = model.data_preprocessor(inputs(args.batch, args.device), True)
    from pc_kd.models.backbones import camera_bev
    from pc_kd.ops import bev_pool

    result = dict(machine=machine(), batch=args.batch, config=os.path.basename(CONFIG))
    captured = {}

    def capture(depth, context, frustum, grid, impl="auto"):
        captured["args"] = (depth.detach(), context.detach(), frustum.detach(), grid)
        return bev_pool(depth, context, frustum, grid, impl=impl)

    camera_bev.bev_pool = capture
    model(**data, mode="loss")
    camera_bev.bev_pool = bev_pool
    depth, context, frustum, grid = captured["args"]
    impls = ["torch"] + (["triton"] if args.device == "cuda" else [])
    outs = {}
    for impl in impls:
        os.environ["PC_KD_BEV_POOL_IMPL"] = impl

        def step():
            model.zero_grad(set_to_none=True)
            sum(model(**data, mode="loss").values()).backward()

        seconds, peak, _ = timed(step, args.device, args.repeats)
        d, c = depth.clone().requires_grad_(), context.clone().requires_grad_()

        def pool():
            out = bev_pool(d, c, frustum, grid, impl=impl)
            out.sum().backward()
            return out

        pool_s, _, out = timed(pool, args.device, args.repeats)
        outs[impl] = (out.detach(), d.grad.detach(), c.grad.detach())
        result[impl] = dict(step_s=seconds, peak_gb=peak / 2 ** 30, bev_pool_fwd_bwd_s=pool_s,
                            bev_pool_share=pool_s / seconds)
    os.environ.pop("PC_KD_BEV_POOL_IMPL", None)
    if "triton" in outs:
        result["max_abs_diff"] = {name: float((a - b).abs().max()) for name, a, b in
                                  zip(("bev", "grad_depth", "grad_context"), outs["torch"], outs["triton"])}
        result["step_speedup_triton"] = result["torch"]["step_s"] / result["triton"]["step_s"]
    emit(result, args.json)


if __name__ == "__main__":
    main()
