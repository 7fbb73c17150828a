"""Cost of UniDistill's losses at nuScenes size (the LiDAR -> camera config: +-54 m at 0.6 m, 180 x 180 cells,
six task heads), pc_kd's batched losses against a loop over boxes as the released code runs them, same inputs,
one run; optionally a whole distillation step (``--step``: camera student, voxel LiDAR teacher; GPU-sized).

    python benchmarks/bench_bev_distill.py [--device cuda] [--boxes 200] [--batch 4] [--repeats 5] [--step]
                                           [--profile top_ops.txt]

Prints JSON: seconds of the three losses forward + backward for ``--boxes`` boxes (median after a warm-up) with
pc_kd's ``BEVDistiller.distill_losses``, of each term alone (its adapter included; the two options ``dense``
and ``crosskd`` at weight 10), of the dense term with its adapter run over the whole map instead of the boxes'
cells (``dense_map_over_cells``), and of a per-box loop of the keypoint feature and relation terms, their
ratio and the largest difference of the two loss values; for the three losses and each term, the operators one
call dispatches and the reads back to the host among them (``losses_dispatch``, ``term_dispatch``: what
usually bounds small ops on a GPU; counted the same on any device). The backward
stops at the student's BEV maps and head outputs (the head's own backward is shared with the detection loss in
a step). With ``--step`` the shares of a distillation step spent in the teacher and in the losses (the voxel
teacher needs spconv: spconv-triton autotunes every conv on first use, minutes); ``--profile`` writes the
profiler's top operators of one losses call. The issue's GPU targets: losses <= 5 ms for 200 boxes, teacher + losses
<= 35 % of a student step.
"""
import argparse
import os
import sys

import torch

from common import dispatch_counts, emit, machine, timed

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
ROOT = os.path.join(os.path.dirname(__file__), "..")
CONFIG = os.path.join(ROOT, "configs", "unidistill", "unidistill_lss-camera_centerpoint-voxel_nuscenes.py")


def build(device):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from pc_kd.registry import MODELS

    init_default_scope("pc_kd")
    cfg = Config.fromfile(CONFIG)
    cfg.model.teacher_ckpt = None  # random teacher weights: the cost does not depend on them
    cwd = os.getcwd()
    os.chdir(ROOT)  # the config names its student and teacher configs from the repository root
    try:
        return MODELS.build(cfg.model).to(device).train()
    finally:
        os.chdir(cwd)


def maps(distiller, batch, device, seed=0):
    """Random student / teacher ``extract`` outputs with the two detectors' channels on the shared grid."""
    from pc_kd.models.distillers.bev_distiller import bev_channels

    g = torch.Generator().manual_seed(seed)
    H, W = distiller.student.head.grid_hw
    out = []
    for model in (distiller.student, distiller.teacher):
        low, high = bev_channels(model)
        feats = dict(bev_low=torch.randn(batch, low, H, W, generator=g).to(device),
                     bev_high=torch.randn(batch, high, H, W, generator=g).to(device))
        with torch.no_grad():
            feats["head"] = model.head(feats["bev_high"])
        if model is distiller.student:
            # leaves: the losses' backward stops at the student's maps and head outputs; the head's own backward
            # is not the losses' cost (in a step it runs once, for the detection and distillation losses together)
            feats = dict(bev_low=feats["bev_low"].requires_grad_(), bev_high=feats["bev_high"].requires_grad_(),
                         head=[{k: v.requires_grad_() for k, v in task.items()} for task in feats["head"]])
        out.append(feats)
    return out


def random_boxes(n, batch, device, seed=1):
    g = torch.Generator().manual_seed(seed)
    per = [n // batch + (i < n % batch) for i in range(batch)]
    return [torch.cat([torch.rand(k, 2, generator=g) * 100 - 50, torch.zeros(k, 1), torch.rand(k, 3, generator=g) * 4
                       + 0.5, torch.rand(k, 1, generator=g) * 6.28 - 3.14], 1).to(device) for k in per]


def loop_keypoint_losses(student, teacher, boxes, grid, adapters, eps=1e-4):
    """Feature (bev_low) and relation (bev_high) terms one box at a time, as a per-box implementation runs them."""
    from pc_kd.models.losses.bev_distill import box_keypoints, sample_bev

    fs_low, fs_high = adapters["bev_low"](student["bev_low"]), adapters["bev_high"](student["bev_high"])
    feature = relation = fs_low.new_zeros(())
    n = sum(len(b) for b in boxes)
    for b, bx in enumerate(boxes):
        for box in bx:
            xy = box_keypoints(box[None])[None]  # [1, 1, 9, 2]
            s = sample_bev(fs_low[b:b + 1], xy, grid)[0, 0]
            t = sample_bev(teacher["bev_low"][b:b + 1], xy, grid)[0, 0]
            feature = feature + (s - t).abs().mean()
            s = sample_bev(fs_high[b:b + 1], xy, grid)[0, 0]
            t = sample_bev(teacher["bev_high"][b:b + 1], xy, grid)[0, 0]
            a_s, a_t = s / (s.norm(dim=-1, keepdim=True) + eps), t / (t.norm(dim=-1, keepdim=True) + eps)
            relation = relation + (a_s @ a_s.T - a_t @ a_t.T).abs().mean()
    return feature / (n + 1e-4), relation / (n + 1e-4)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--boxes", type=int, default=200)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--step", action="store_true", help="also time a whole distillation step (GPU-sized)")
    parser.add_argument("--profile", help="write the profiler's table of one losses call (top ops) to this file")
    parser.add_argument("--json")
    args = parser.parse_args()
    from pc_kd.models.distillers.bev_distiller import head_grid
    from pc_kd.models.losses.bev_distill import dense_feature_loss

    torch.manual_seed(0)
    distiller = build(args.device)
    student, teacher = maps(distiller, args.batch, args.device)
    boxes = random_boxes(args.boxes, args.batch, args.device)
    grid = head_grid(distiller.student, student["bev_low"].shape)
    result = dict(machine=machine(), device=args.device, boxes=args.boxes, batch=args.batch,
                  grid=list(distiller.student.head.grid_hw), config=os.path.basename(CONFIG),
                  channels=dict(student=[student["bev_low"].shape[1], student["bev_high"].shape[1]],
                                teacher=[teacher["bev_low"].shape[1], teacher["bev_high"].shape[1]]))

    def losses_step():  # what a training step adds: the losses and their backward (no value read back)
        distiller.zero_grad(set_to_none=True)
        losses = distiller.distill_losses(student, teacher, boxes)
        sum(losses.values()).backward(retain_graph=True)
        return losses

    def ours():
        return {k: float(v.detach()) for k, v in losses_step().items()}

    def loop():
        distiller.zero_grad(set_to_none=True)
        feature, relation = loop_keypoint_losses(student, teacher, boxes, grid, distiller.adapters)
        (feature + relation).backward(retain_graph=True)
        return dict(feature=float(feature) * distiller.weights["feature"],
                    relation=float(relation) * distiller.weights["relation"])

    ours_s, _, ours_out = timed(ours, args.device, args.repeats)
    ours_ops = dispatch_counts(losses_step)
    weights = dict(distiller.weights)
    terms, term_ops = {}, {}
    for term in ("feature", "relation", "response", "dense", "crosskd"):  # each term alone, its adapter included
        distiller.weights = {k: ((v or 10.0) if k == term else 0.0) for k, v in weights.items()}
        terms[term] = timed(ours, args.device, args.repeats)[0]
        term_ops[term] = dispatch_counts(losses_step)
    distiller.weights = weights

    def dense_on_the_map():  # the same dense term with the adapter run over the whole map first
        distiller.zero_grad(set_to_none=True)
        loss = dense_feature_loss(distiller.adapters["bev_high"](student["bev_high"]), teacher["bev_high"], boxes,
                                  grid, distiller.dense_overlap)
        loss.backward(retain_graph=True)
        return float(loss.detach())

    dense_map_s = timed(dense_on_the_map, args.device, args.repeats)[0]
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
        with profile(activities=activities) as prof:
            ours()
        sort = "cuda_time_total" if args.device == "cuda" else "cpu_time_total"
        with open(args.profile, "w") as f:
            f.write(prof.key_averages().table(sort_by=sort, row_limit=40))
    loop_s, _, loop_out = timed(loop, args.device, args.repeats)
    result.update(losses_fwd_bwd_s=ours_s, losses_dispatch=ours_ops, term_fwd_bwd_s=terms, term_dispatch=term_ops,
                  dense_adapter_on_map_fwd_bwd_s=dense_map_s,
                  dense_map_over_cells=dense_map_s / terms["dense"], loop_feature_relation_fwd_bwd_s=loop_s,
                  loop_over_ours=loop_s / ours_s,
                  max_loss_diff=max(abs(ours_out["loss_distill_feature"] - loop_out["feature"]),
                                    abs(ours_out["loss_distill_relation"] - loop_out["relation"])))
    if args.step:
        sys.path.insert(0, os.path.dirname(__file__))
        from bench_lss_step import inputs

        data = distiller.data_preprocessor(inputs(args.batch, args.device), True)
        times = {name: timed(fn, args.device, 3)[0]
                 for name, fn in distiller.step_parts(data["inputs"], data["data_samples"]).items()}
        result.update(student_step_s=times["student"], teacher_forward_s=times["teacher"], step_s=times["full"],
                      teacher_share=times["teacher"] / times["full"],
                      losses_s=times["losses"], losses_share=times["losses"] / times["full"])
    emit(result, args.json)


if __name__ == "__main__":
    main()
