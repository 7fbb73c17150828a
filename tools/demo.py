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
import os
import os.path as osp
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log

from pc_kd.engine.config_checks import ConfigOptionsAction

CONFIGS = osp.join(osp.dirname(osp.abspath(__file__)), "..", "configs")
DISTILL = osp.join(CONFIGS, "pointdc", "pointdc_spconv-unet_tinysegnet_synthetic-indoor.py")
CLUSTER = osp.join(CONFIGS, "pointdc", "pointdc-cluster_spconv-unet_tinysegnet_synthetic-indoor.py")
SUPERVISED = osp.join(CONFIGS, "supervised", "supervised_spconv-unet_none_synthetic-indoor-distill.py")
KMEANS_RESTARTS = 40  # with 10 seedings the best objective still moved a row by up to 9 mIoU; with 40 it did not
ROWS = {"a": "(a) k-means on fused 2D features + super-points", "b": "(b) distilled student + super-points",
        "c": "(c) random student + super-points", "d": "(d) k-means on colours + xyz + super-points",
        "e": "(e) PointDC stage 2 (pseudo-labels of (b))", "f": "(f) same student, 3D labels (upper bound)"}


def build(registry_name: str, cfg: dict):
    from mmengine.registry import init_default_scope

    import pc_kd.registry as registry

    init_default_scope("pc_kd")
    return getattr(registry, registry_name).build(cfg)


def prepare(cfg, teacher_iters=None):
    """Teacher weights (trained once on its own rooms), fused targets and super-points of both splits."""
    from pc_kd.engine.teacher_training import train_image_teacher
    from pc_kd.projection import fuse_dataset
    from pc_kd.projection.fusion import fusion_fingerprint
    from pc_kd.voxel import write_superpoints

    teacher_cfg = cfg.fusion.teacher
    if not osp.exists(teacher_cfg.pretrained):
        print_log(f"no 2D teacher at {teacher_cfg.pretrained}: training one on its own rooms "
                  f"(teacher_training in the config)", "current")
        training = dict(cfg.teacher_training)
        data = dict(training.pop("dataset"), pipeline=[])
        if teacher_iters:
            training["iters"] = teacher_iters
        miou = train_image_teacher(build("DATASETS", data), teacher_cfg.model, teacher_cfg.pretrained, **training)
        print_log(f"2D teacher written to {teacher_cfg.pretrained}; mIoU on its own training frames "
                  f"{miou * 100:.1f} %", "current")
    teacher = build("MODELS", teacher_cfg)
    options = {k: v for k, v in cfg.fusion.items() if k not in ("teacher", "out_dir")}
    for split in ("train", "val"):
        dataset = build("DATASETS", dict(cfg[f"{split}_dataloader"].dataset, pipeline=[]))
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        result = fuse_dataset(teacher, infos, cfg.fusion.out_dir, desc=f"fusing {split}",
                              fingerprint=fusion_fingerprint(teacher_cfg, options), **options)
        print_log(f"fused {split}: coverage: {result['coverage'] * 100:.1f} % of the points seen by >= 1 frame",
                  "current")
        jobs = [(Path(i["lidar_path"]).stem, i["lidar_path"], i["num_pts_feats"]) for i in infos]
        write_superpoints(jobs, cfg.superpoint_dir, workers=min(2, os.cpu_count() or 1))


def val_scenes(loader, feature_dir):
    """Per validation scene: input cloud ``[N, 3 + F]``, super-points ``[N]``, labels ``[N]`` and fused teacher
    features ``[N, C]`` (zeros where no frame sees the point)."""
    scenes = []
    for i in range(len(loader.dataset)):
        sample = loader.dataset[i]
        info = loader.dataset.get_data_info(i)
        fused = np.load(Path(feature_dir) / f"{Path(info['lidar_path']).stem}.npz")
        scenes.append(dict(points=sample["inputs"]["points"], superpoints=sample["data_samples"].superpoints,
                           labels=sample["data_samples"].gt_pts_seg.pts_semantic_mask,
                           fused=torch.from_numpy(fused["feats"].astype(np.float32))))
    return scenes


def model_features(model, loader):
    from pc_kd.engine import point_features

    return [f.cpu() for f, _, _ in point_features(model, loader)]


def cluster_scores(feats, scenes, num_classes, seed, restarts=KMEANS_RESTARTS):
    """The evaluation of every unsupervised row: mean feature per super-point, one cosine k-means into
    ``num_classes`` over all super-points of the split (the best of ``restarts`` seedings), each point takes its
    super-point's cluster, one Hungarian matching for the split. Returns (scores, per-scene cluster ids)."""
    from pc_kd.evaluation import hungarian_miou
    from pc_kd.heads import assign_clusters, kmeans, segment_pool

    pooled = torch.cat([segment_pool(f, s["superpoints"])[0] for f, s in zip(feats, scenes)])
    centroids, _ = kmeans(pooled, num_classes, seed=seed, restarts=restarts)
    preds = [assign_clusters(f, centroids, s["superpoints"]) for f, s in zip(feats, scenes)]
    return hungarian_miou(torch.cat(preds), torch.cat([s["labels"] for s in scenes]), num_classes,
                          ignore_index=255), preds


def label_scores(logits, scenes, num_classes):
    """The supervised row: argmax of the mean logits per super-point, scored with the same Hungarian matching."""
    from pc_kd.evaluation import hungarian_miou
    from pc_kd.heads import segment_pool

    preds = []
    for f, s in zip(logits, scenes):
        pooled, index = segment_pool(f, s["superpoints"])
        preds.append(torch.where(index >= 0, pooled.argmax(1)[index.clamp(min=0)], f.argmax(1)))
    return hungarian_miou(torch.cat(preds), torch.cat([s["labels"] for s in scenes]), num_classes,
                          ignore_index=255), preds


def standardized(columns: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return (columns - reference.mean(0)) / reference.std(0).clamp(min=1e-6)


def load(config, options):
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    return cfg


def train_runner(config, options, work_dir, seed, epochs):
    """Train ``config`` (with ``options`` merged) by the Runner, seeded, and return its trained model."""
    from pc_kd.engine import bare_model, build_runner

    cfg = load(config, options)
    cfg.work_dir, cfg.randomness = work_dir, dict(seed=seed, deterministic=False)
    cfg.experiment_name = f"{Path(config).stem}_seed{seed}"  # one logger per run in this process
    cfg.train_cfg.max_epochs = cfg.param_scheduler[0].T_max = epochs
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # the demo scores every row itself, below
    runner = build_runner(cfg, config)
    runner.train()
    return bare_model(runner.model)


def run_seed(seed, args, scenes, val_loader, num_classes):
    """All six rows for one seed: ``{row: (scores, per-scene predictions)}``."""
    work = Path(args.work_dir) / f"seed{seed}"
    rows = {}
    rows["a"] = cluster_scores([s["fused"] for s in scenes], scenes, num_classes, seed)
    raw = [torch.cat([s["points"][:, 3:6], s["points"][:, :3]], 1) for s in scenes]
    reference = torch.cat(raw)
    rows["d"] = cluster_scores([standardized(r, reference) for r in raw], scenes, num_classes, seed)
    torch.manual_seed(seed)
    random_student = build("MODELS", load(DISTILL, args.cfg_options).model)
    random_student.init_weights()
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


def table(per_seed, num_scenes, num_classes):
    """The markdown table of the rows (mean +- std over seeds when there are several) and the targets."""
    seeds = len(per_seed)
    width = 14 if seeds > 1 else 6
    lines = [f"Hungarian-matched scores on {num_scenes} validation rooms ({num_classes} classes), %, "
             + ("one seed (make demo-full: 3 seeds)" if seeds == 1 else f"mean +- std over {seeds} seeds") + ":",
             f"| {'method':<47s} | " + " | ".join(f"{m:>{width}s}" for m in ("mIoU", "oAcc", "mAcc")) + " |",
             f"|{'-' * 49}|" + "|".join("-" * (width + 2) for _ in range(3)) + "|"]
    means = {}
    for key, name in ROWS.items():
        cells = []
        for metric in ("miou", "oacc", "macc"):
            values = np.array([rows[key][0][metric] * 100 for rows in per_seed])
            means[key, metric] = values.mean()
            cells.append(f"{values.mean():6.2f}" + (f" +- {values.std():4.2f}" if seeds > 1 else ""))
        lines.append(f"| {name:<47s} | " + " | ".join(f"{c:>{width}s}" for c in cells) + " |")
    miou = {k: means[k, "miou"] for k in ROWS}
    checks = [("(b) >= (d) + 15", miou["b"] >= miou["d"] + 15), ("(b) > (c) + 15", miou["b"] > miou["c"] + 15),
              ("(b) >= (a)", miou["b"] >= miou["a"]), ("(e) >= (b)", miou["e"] >= miou["b"])]
    lines.append("targets (mIoU): " + ", ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in checks))
    return "\n".join(lines), means


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

    cfg = load(DISTILL, args.cfg_options)
    prepare(cfg, args.teacher_iters)
    val_loader = Runner.build_dataloader(cfg.val_dataloader)
    scenes = val_scenes(val_loader, cfg.feature_dir)
    classes = val_loader.dataset.metainfo["classes"]
    per_seed = []
    for seed in args.seeds:
        per_seed.append(run_seed(seed, args, scenes, val_loader, len(classes)))
        print_log(f"seed {seed}: " + ", ".join(f"({k}) {rows[0]['miou'] * 100:.2f}"
                                               for k, rows in sorted(per_seed[-1].items())), "current")
    text, means = table(per_seed, len(scenes), len(classes))
    print("\n" + text)
    scores, preds = per_seed[0]["b"]
    pred = scores["mapping"][preds[0].numpy()]
    png = plot_bev_labels(scenes[0]["points"].numpy(), [scenes[0]["labels"].numpy(), np.where(pred < 0, 255, pred)],
                          ["ground truth", f"distilled student, no 3D labels (mIoU {scores['miou'] * 100:.1f})"],
                          classes, osp.join(args.work_dir, "bev_distilled.png"), max_height=2.0)
    print(f"picture: {png}")
    return means


if __name__ == "__main__":
    from pc_kd.engine import exit_on_user_error

    with exit_on_user_error():
        main()
