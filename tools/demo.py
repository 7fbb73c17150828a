"""The README's main job: image -> 3D distillation on synthetic rooms, end to end, with its baselines.

    python tools/demo.py [--work-dir work_dirs/demo] [--seeds 0 [1 2]] [--epochs 30] [--cluster-epochs 10]
        [--teacher-iters N] [--cfg-options k=v ...]

1. generate synthetic rooms whose colours do not name the class (materials drawn per instance from pools
   shared by all classes, Lambertian shading) with posed RGB-D frames;
2. train a small 2D teacher (TinySegNet) with 2D labels only, on rooms of its own that the student never sees
   (``teacher_training`` in the config: a stand-in for an image model pretrained elsewhere);
3. fuse its features into the student's rooms (depth visibility) and make super-points (VCCS, no labels);
4. per seed: distil a spconv U-Net student with PointDC's CMD loss (no 3D labels), then PointDC's stage 2,
   and, as an upper bound, the same student trained with 3D labels;
5. score every row the same way on the validation rooms: features pooled per super-point, one cosine
   k-means into the class count over the whole split, one Hungarian matching per split.

With several ``--seeds`` (``make demo-full``: 0 1 2) the table shows mean +- standard deviation over seeds; the
teacher, the data and the super-points stay the same, the seed changes student initialisation, augmentation,
sampling and k-means.
"""
import argparse
import os.path as osp
from pathlib import Path

import numpy as np
import torch
from mmengine.logging import print_log

from pc_kd.engine.config_checks import ConfigOptionsAction
from pc_kd.experiments.common import build, init_weights_quietly, load_config
from pc_kd.experiments.indoor import (cluster_scores, label_scores, model_features, prepare, room_miou, standardized,
                                      table, train_runner, val_scenes)

CONFIGS = osp.join(osp.dirname(osp.abspath(__file__)), "..", "configs")
DISTILL = osp.join(CONFIGS, "pointdc", "pointdc_spconv-unet_tinysegnet_synthetic-indoor.py")
CLUSTER = osp.join(CONFIGS, "pointdc", "pointdc-cluster_spconv-unet_tinysegnet_synthetic-indoor.py")
SUPERVISED = osp.join(CONFIGS, "supervised", "supervised_spconv-unet_none_synthetic-indoor-distill.py")
ROWS = {"a": "(a) k-means on fused 2D features + super-points", "b": "(b) distilled student + super-points",
        "c": "(c) random student + super-points", "d": "(d) k-means on colours + xyz + super-points",
        "e": "(e) PointDC stage 2 (pseudo-labels of (b))", "f": "(f) same student, 3D labels (upper bound)"}
# (name, row, other row, margin): met when the row's mean mIoU is >= (or, with ">", above) the other's + margin
TARGETS = [("(b) >= (d) + 15", "b", "d", 15), ("(b) > (c) + 15", "b", "c", 15), ("(b) >= (a)", "b", "a", 0),
           ("(e) >= (b)", "e", "b", 0)]


def run_seed(seed, args, scenes, val_loader, num_classes):
    """All six rows for one seed: ``{row: (scores, per-scene predictions)}``."""
    work = Path(args.work_dir) / f"seed{seed}"
    rows = {}
    rows["a"] = cluster_scores([s["fused"] for s in scenes], scenes, num_classes, seed)
    raw = [torch.cat([s["points"][:, 3:6], s["points"][:, :3]], 1) for s in scenes]
    reference = torch.cat(raw)
    rows["d"] = cluster_scores([standardized(r, reference) for r in raw], scenes, num_classes, seed)
    torch.manual_seed(seed)
    random_student = build("MODELS", load_config(DISTILL, args.cfg_options).model)
    init_weights_quietly(random_student)
    rows["c"] = cluster_scores(model_features(random_student, val_loader), scenes, num_classes, seed)
    student = train_runner(DISTILL, args.cfg_options, str(work / "distill"), seed, args.epochs)
    rows["b"] = cluster_scores(model_features(student, val_loader), scenes, num_classes, seed)
    checkpoint = str(work / "distill" / f"epoch_{args.epochs}.pth")
    clustered = train_runner(CLUSTER, dict(args.cfg_options, load_from=checkpoint), str(work / "cluster"), seed,
                             args.cluster_epochs)
    rows["e"] = cluster_scores(model_features(clustered, val_loader), scenes, num_classes, seed)
    supervised = train_runner(SUPERVISED, args.cfg_options, str(work / "supervised"), seed, args.epochs)
    rows["f"] = label_scores(model_features(supervised, val_loader), scenes, num_classes)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="work_dirs/demo", help="where runs, tables and pictures go")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="one run per seed (table: mean +- std)")
    parser.add_argument("--epochs", type=int, default=30, help="distillation and supervised epochs")
    parser.add_argument("--cluster-epochs", type=int, default=10, help="PointDC stage-2 epochs")
    parser.add_argument("--teacher-iters", type=int, help="default: the config's teacher_training.iters")
    parser.add_argument("--cfg-options", nargs="+", action=ConfigOptionsAction, default={},
                        help="override entries of all three configs, e.g. val_dataloader.dataset.num_scenes=4")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads; the README's numbers were made with 2 (another count changes the "
                             "order of floating-point sums, and so the numbers)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from mmengine.runner import Runner

    from pc_kd.visualization import plot_bev_labels

    cfg = load_config(DISTILL, args.cfg_options)
    prepare(cfg, args.teacher_iters)
    val_loader = Runner.build_dataloader(cfg.val_dataloader)
    scenes = val_scenes(val_loader, cfg.feature_dir)
    classes = val_loader.dataset.metainfo["classes"]
    per_seed = []
    for seed in args.seeds:
        per_seed.append(run_seed(seed, args, scenes, val_loader, len(classes)))
        print_log(f"seed {seed}: " + ", ".join(f"({k}) {rows[0]['miou'] * 100:.2f}"
                                               for k, rows in sorted(per_seed[-1].items())), "current")
    text, means = table(per_seed, len(scenes), len(classes), ROWS, TARGETS)
    print("\n" + text)
    scores, preds = per_seed[0]["b"]
    pred = scores["mapping"][preds[0].numpy()]
    labels = scenes[0]["labels"].numpy()
    room = room_miou(pred, labels, len(classes))
    png = plot_bev_labels(scenes[0]["points"].numpy(), [labels, np.where(pred < 0, 255, pred)],
                          ["ground truth", f"distilled student, no 3D labels: its clusters coloured by the class the "
                                           f"split's Hungarian matching gave them\n(this room's mIoU "
                                           f"{room * 100:.1f}; the {len(scenes)} validation rooms' "
                                           f"{scores['miou'] * 100:.1f})"],
                          classes, osp.join(args.work_dir, "bev_distilled.png"), max_height=2.0)
    print(f"picture: {png}")
    return means


if __name__ == "__main__":
    from pc_kd.engine import exit_on_user_error

    with exit_on_user_error():
        main()
