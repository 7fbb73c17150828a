"""Multi-view back-projection: pc_kd's fused op against an OpenScene-style per-view loop and a vectorised
all-views PyTorch version, on the same random room, in one run; with ``--real-scannet`` on the REAL ScanNet
scene0000_00 instead: its 81369 vertices, the 100 posed RGB-D frames and the PASCAL VOC ESPNetv2 teacher's features
of them (images at half size; computed once, untimed; the frames scaled to the feature maps for both methods).

    python benchmarks/bench_backproject.py [--points 200000] [--views 50] [--channels 64 512] [--device cpu|cuda]
                                           [--batch 1 2]
    python benchmarks/bench_backproject.py --real-scannet $PC_KD_REAL_DATA [--views 100]

``--batch B`` splits the points and views into a ragged batch of B rooms (offsets), which pc_kd fuses in one
call and the loop one room after another.

Prints JSON: seconds, time ratios (anchor / pc_kd), peak memory beyond the inputs, the output size, the
largest difference between the outputs, and on CUDA the achieved bytes/s.
The vectorised version builds a [V, N, C] tensor; it is skipped when that would not fit in memory.
"""
import argparse
import functools
import math

import torch

from common import emit, machine, timed
from pc_kd.projection import backproject_features, splat_zbuffer
from pc_kd.projection.project import project_points

DEPTH_TOL = 0.25


def make_scene(n, v, c, feat_hw, device, seed=0):
    """Points on the walls, floor and furniture-like boxes of a 8 x 6 x 3 m room; V cameras inside looking
    around; depth maps rendered from the points (z-buffer); random features."""
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, 3, generator=g, dtype=torch.float64) * torch.tensor([8.0, 6.0, 3.0])
    face = torch.randint(0, 5, (n,), generator=g)
    pts[face == 0, 2] = 0.0
    pts[face == 1, 0] = 0.0
    pts[face == 2, 0] = 8.0
    pts[face == 3, 1] = 0.0
    pts[face == 4, 1] = 6.0
    h, w = feat_hw
    K = torch.tensor([[0.9 * w, 0, w / 2, 0], [0, 0.9 * w, h / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
    lidar2img = []
    for i in range(v):
        yaw = 2 * math.pi * i / v
        fwd = torch.tensor([math.cos(yaw), math.sin(yaw), -0.2], dtype=torch.float64)
        fwd /= fwd.norm()
        right = torch.linalg.cross(fwd, torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))
        right /= right.norm()
        down = torch.linalg.cross(fwd, right)
        pose = torch.eye(4, dtype=torch.float64)
        pose[:3, :3] = torch.stack([right, down, fwd], 1)
        pose[:3, 3] = torch.tensor([4.0 + math.cos(yaw), 3.0 + math.sin(yaw), 1.5])
        lidar2img.append(K @ torch.linalg.inv(pose))
    lidar2img = torch.stack(lidar2img)
    proj = project_points(pts, lidar2img, (h, w))
    depth = torch.stack([splat_zbuffer(proj.uv[i], proj.depth[i], (h, w), 1, valid=proj.valid[i]).depth
                         for i in range(v)]).float()
    depth[torch.isinf(depth)] = 0
    feats = torch.randn(v, c, h, w, generator=g)
    return pts.float().to(device), feats.to(device), lidar2img.float().to(device), depth.to(device)


def real_scannet(real_root, views, device):
    """The real scene's vertices, the VOC teacher's features of its first ``views`` frames (as fusion computes
    them), ``lidar2img`` scaled to the feature maps and the depth maps resized to them, and the teacher's seconds."""
    import time as _time

    import torch.nn.functional as F

    from pc_kd.experiments.real_teachers import SCANNET_SCENE, scannet_frames, scannet_vertices
    from pc_kd.models.backbones.espnetv2 import ESPNetV2Teacher
    from pc_kd.projection.fusion import load_frames

    scene = f"{real_root}/{SCANNET_SCENE}"
    points, _ = scannet_vertices(scene)
    images, lidar2img, depth = load_frames(scannet_frames(scene)[:views], SCANNET_SCENE)
    teacher = ESPNetV2Teacher(weights=f"{real_root}/teachers/espnetv2_s_2.0_pascal_384x384.pth", input_scale=0.5)
    start = _time.perf_counter()
    with torch.no_grad():
        feats = torch.cat([teacher(images[i:i + 8]) for i in range(0, len(images), 8)])
    teacher_s = _time.perf_counter() - start
    h, w = feats.shape[2:]
    scale = torch.diag(torch.tensor([w / images.shape[3], h / images.shape[2], 1.0, 1.0], dtype=torch.float64))
    depth = F.interpolate(depth[:, None], size=(h, w), mode="nearest")[:, 0]
    return (torch.from_numpy(points).float().to(device), feats.to(device), (scale @ lidar2img).float().to(device),
            depth.to(device), teacher_s)


def ragged_batch(n, v, c, feat_hw, device, batch):
    """``batch`` rooms of ``n // batch`` points and ``v // batch`` views, concatenated (one room: the room)."""
    if batch == 1:
        return make_scene(n, v, c, feat_hw, device)
    rooms = [make_scene(n // batch, v // batch, c, feat_hw, device, seed=b) for b in range(batch)]
    return tuple(torch.cat(parts) for parts in zip(*rooms))


def per_room(fn, points, feats, lidar2img, depth, image_hw, offset, view_offset):
    """An anchor run one room of a ragged batch at a time, its outputs concatenated (one room: as it is)."""
    outs, counts, p0, v0 = [], [], 0, 0
    for p1, v1 in zip(offset.tolist(), view_offset.tolist()):
        out, count = fn(points[p0:p1], feats[v0:v1], lidar2img[v0:v1], depth[v0:v1], image_hw)
        outs.append(out)
        counts.append(count)
        p0, v0 = p1, v1
    return (outs[0], counts[0]) if len(outs) == 1 else (torch.cat(outs), torch.cat(counts))


def openscene_loop(points, feats, lidar2img, depth, image_hw):
    """Per view: project, take the pixel, depth test, gather the feature column, sum and count."""
    h, w = image_hw
    n, c = points.shape[0], feats.shape[1]
    total = torch.zeros(n, c, device=feats.device)
    count = torch.zeros(n, device=feats.device)
    homo = torch.cat([points, torch.ones_like(points[:, :1])], 1).double()
    lidar2img = lidar2img.double()
    for v in range(feats.shape[0]):
        p = homo @ lidar2img[v].T
        z = p[:, 2]
        u, q = p[:, 0] / z, p[:, 1] / z
        ui, qi = torch.floor(u).long(), torch.floor(q).long()
        inside = (z > 1e-5) & (ui >= 0) & (ui < w) & (qi >= 0) & (qi < h)
        d = depth[v][qi.clamp(0, h - 1), ui.clamp(0, w - 1)]
        mask = inside & (d > 0) & ((d - z).abs() <= DEPTH_TOL * d)
        total[mask] += feats[v][:, qi[mask], ui[mask]].T
        count[mask] += 1
    return total / count.clamp(min=1)[:, None], count


def vectorised(points, feats, lidar2img, depth, image_hw):
    """All views at once: a [V, N, C] gather, masked, summed over views."""
    h, w = image_hw
    homo = torch.cat([points, torch.ones_like(points[:, :1])], 1).double()
    p = torch.einsum("vij,nj->vni", lidar2img.double(), homo)
    z = p[..., 2]
    ui, qi = torch.floor(p[..., 0] / z).long(), torch.floor(p[..., 1] / z).long()
    inside = (z > 1e-5) & (ui >= 0) & (ui < w) & (qi >= 0) & (qi < h)
    lin = qi.clamp(0, h - 1) * w + ui.clamp(0, w - 1)
    d = torch.gather(depth.flatten(1), 1, lin)
    mask = inside & (d > 0) & ((d - z).abs() <= DEPTH_TOL * d)
    flat = feats.flatten(2).transpose(1, 2)  # [V, h*w, C] view
    sampled = torch.gather(flat, 1, lin[..., None].expand(-1, -1, feats.shape[1]))  # [V, N, C]
    sampled *= mask[..., None]
    count = mask.sum(0)
    return sampled.sum(0) / count.clamp(min=1)[:, None], count


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=200_000)
    parser.add_argument("--views", type=int, default=50)
    parser.add_argument("--channels", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="rooms per ragged batch")
    parser.add_argument("--feat-hw", type=int, nargs=2, default=[240, 320])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the result here")
    parser.add_argument("--real-scannet", metavar="REAL_DATA", help="the real-data folder: time on ScanNet "
                        "scene0000_00's vertices, frames and the VOC ESPNetv2 teacher's features instead")
    args = parser.parse_args()
    hw = tuple(args.feat_hw)
    rows = []
    if args.real_scannet:
        scenes = [real_scannet(args.real_scannet, args.views, args.device) + (1,)]
    else:
        scenes = (ragged_batch(args.points, args.views, c, hw, args.device, b) + (None, b)
                  for c in args.channels for b in args.batch)
    for points, feats, lidar2img, depth, teacher_s, batch in scenes:
        hw, c, n = tuple(feats.shape[2:]), feats.shape[1], len(points)
        out_bytes = n * c * 4
        row = dict(points=n, views=len(feats), channels=c, feat_hw=list(hw), input_bytes=feats.numel() * 4,
                   output_bytes=out_bytes, batch=batch)
        if teacher_s is not None:
            row.update(scene="real ScanNet scene0000_00, ESPNetv2 (PASCAL VOC) features", teacher_s=teacher_s)
        rooms = dict(offset=torch.tensor([n // batch * (b + 1) for b in range(batch)]),
                     view_offset=torch.tensor([len(feats) // batch * (b + 1) for b in range(batch)]))
        anchor = functools.partial(per_room, image_hw=hw, **rooms)
        ours = functools.partial(backproject_features, points, feats, lidar2img, hw, visibility="depth",
                                 depth_maps=depth, depth_tol=DEPTH_TOL, sampling="nearest", reduce="mean",
                                 **(rooms if batch > 1 else {}))

        t_ours, m_ours, (o_ours, n_ours) = timed(ours, args.device, args.repeats)
        row.update(pc_kd_s=t_ours, pc_kd_peak_bytes=m_ours, pc_kd_peak_over_output=m_ours / out_bytes,
                   visible_pairs=int(n_ours.sum()))
        if args.device == "cuda":  # bytes that must move: samples read + output written + geometry
            moved = int(n_ours.sum()) * c * 4 + out_bytes + len(feats) * n * 12
            row["pc_kd_bytes_per_s"] = moved / t_ours
        t_loop, m_loop, (o_loop, n_loop) = timed(functools.partial(anchor, openscene_loop, points, feats, lidar2img,
                                                                   depth), args.device, args.repeats)
        row.update(loop_s=t_loop, loop_peak_bytes=m_loop, loop_over_pc_kd=t_loop / t_ours,
                   max_abs_diff_vs_loop=float((o_loop - o_ours).abs().max()),
                   same_view_counts=bool(torch.equal(n_loop.long(), n_ours)))
        del o_loop
        vec_bytes = len(feats) * n * c * 4
        free = (torch.cuda.mem_get_info()[0] if args.device == "cuda"
                else int(open("/proc/meminfo").read().split("MemAvailable:")[1].split()[0]) * 1024)
        if 2.2 * vec_bytes < free:
            t_vec, m_vec, (o_vec, _) = timed(functools.partial(anchor, vectorised, points, feats, lidar2img, depth),
                                             args.device, args.repeats)
            row.update(vectorised_s=t_vec, vectorised_peak_bytes=m_vec, vectorised_over_pc_kd=t_vec / t_ours,
                       max_abs_diff_vs_vectorised=float((o_vec - o_ours).abs().max()))
            del o_vec
        else:
            row["vectorised_skipped"] = f"needs a [V, N, C] tensor of {vec_bytes / 2**30:.1f} GiB"
        rows.append(row)
        del points, feats, depth, o_ours
    emit(dict(benchmark="backproject", device=args.device, machine=machine(), results=rows), args.json)


if __name__ == "__main__":
    main()
