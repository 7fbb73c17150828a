"""The README's main job: image -> 3D distillation on synthetic rooms, end to end, in a few minutes on a CPU.

    python tools/demo.py [--work-dir work_dirs/demo] [--epochs 30]

1. generate synthetic rooms with posed RGB-D frames (data/synthetic_indoor_distill);
2. train a small 2D teacher (TinySegNet) on the rendered images with 2D labels only;
3. fuse its features into the 3D points (tools/fuse_features.py) and make super-points (VCCS);
4. distil a spconv U-Net student with PointDC's CMD loss, no 3D labels (configs/pointdc/...);
5. cluster and score with Hungarian mIoU on the validation rooms: (a) k-means on the raw fused 2D features,
   (b) super-point clustering of the distilled student, (c) the same on a randomly initialised student;
6. print the table and save bird's-eye pictures of ground truth and predictions.
"""
import argparse
import os.path as osp
import runpy

import numpy as np
import torch

from pc_kd.engine import build_runner
from pc_kd.evaluation import hungarian_miou
from pc_kd.heads import assign_clusters, kmeans, segment_pool
from pc_kd.heads.clustering import point_features
from pc_kd.registry import MODELS
from pc_kd.visualization import plot_bev_labels

TOOLS = osp.dirname(osp.abspath(__file__))
CONFIG = osp.join(TOOLS, "..", "configs", "pointdc", "pointdc_spconv-unet_tinysegnet_synthetic-indoor.py")


def tool(name, argv):
    return runpy.run_path(osp.join(TOOLS, name))["main"](argv)


def evaluate_student(model, loader, num_classes, seed=0):
    """Super-point clustering of a student's features over the whole set, Hungarian-scored."""
    feats, segs, gts, points = [], [], [], []
    for f, s, p in point_features(model, loader):
        feats.append(f)
        segs.append(s.gt_pts_seg.superpoints)
        gts.append(s.gt_pts_seg.pts_semantic_mask)
        points.append(p.numpy())
    pooled = torch.cat([segment_pool(f, s)[0] for f, s in zip(feats, segs)])
    centroids, _ = kmeans(pooled, num_classes, seed=seed)
    preds = [assign_clusters(f, centroids, s) for f, s in zip(feats, segs)]
    return preds, gts, points


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="work_dirs/demo")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--teacher-iters", type=int, default=400)
    args = parser.parse_args(argv)
    from mmengine.config import Config

    cfg = Config.fromfile(CONFIG)
    cfg.work_dir = args.work_dir
    cfg.train_cfg.max_epochs = args.epochs
    cfg.param_scheduler[0].T_max = args.epochs
    if not osp.exists(cfg.fusion.teacher.pretrained):
        tool("train_image_teacher.py", [CONFIG, "--iters", str(args.teacher_iters)])
    for split in ("train", "val"):
        tool("fuse_features.py", [CONFIG, "--split", split])
        tool("make_superpoints.py", [CONFIG, "--split", split, "--out", cfg.superpoint_dir, "--workers", "1"])
    runner = build_runner(cfg, CONFIG)
    loader = runner.val_dataloader
    classes = loader.dataset.metainfo["classes"]

    # (a) k-means on the raw fused 2D features of every point (unseen points carry zeros)
    fused = [np.load(osp.join(cfg.feature_dir, f"{osp.splitext(osp.basename(loader.dataset.get_data_info(i)['lidar_path']))[0]}.npz"))
             for i in range(len(loader.dataset))]
    raw = [torch.from_numpy(f["feats"].astype(np.float32)) for f in fused]
    gts = [loader.dataset[i]["data_samples"].gt_pts_seg.pts_semantic_mask for i in range(len(loader.dataset))]
    _, assign = kmeans(torch.cat(raw), len(classes), seed=0)
    score_a = hungarian_miou(assign, torch.cat(gts), len(classes), ignore_index=255)

    # (c) a randomly initialised student, (b) the distilled one
    random_model = MODELS.build(cfg.model)
    random_model.init_weights()
    preds_c, _, _ = evaluate_student(random_model, loader, len(classes))
    score_c = hungarian_miou(torch.cat(preds_c), torch.cat(gts), len(classes), ignore_index=255)
    runner.train()
    preds_b, gts_b, points = evaluate_student(runner.model, loader, len(classes))
    score_b = hungarian_miou(torch.cat(preds_b), torch.cat(gts_b), len(classes), ignore_index=255)

    rows = [("(a) k-means on fused 2D features", score_a), ("(b) distilled student + super-points", score_b),
            ("(c) random student + super-points", score_c)]
    table = "\n".join(f"| {name:<38s} | {s['miou'] * 100:6.2f} | {s['oacc'] * 100:6.2f} | {s['macc'] * 100:6.2f} |"
                      for name, s in rows)
    print(f"\nHungarian-matched scores on {len(loader.dataset)} validation rooms ({len(classes)} classes), %:\n"
          f"| {'method':<38s} |   mIoU |   oAcc |   mAcc |\n|{'-' * 40}|--------|--------|--------|\n{table}")
    mapping = score_b["mapping"]
    pred_classes = mapping[preds_b[0].numpy()]
    png = plot_bev_labels(points[0], [gts_b[0].numpy(), np.where(pred_classes < 0, 255, pred_classes)],
                          ["ground truth", f"distilled student, no 3D labels (mIoU {score_b['miou'] * 100:.1f})"],
                          classes, osp.join(args.work_dir, "bev_distilled.png"), max_height=2.0)
    print(f"picture: {png}")
    return dict(a=score_a, b=score_b, c=score_c)


if __name__ == "__main__":
    main()
