"""Image -> 3D distillation experiments on synthetic rooms (what ``tools/demo.py`` runs): the teacher, fused
targets and super-points of both splits made once; students trained by the Runner per seed; every row scored the
same way on the validation rooms (features pooled per super-point, one cosine k-means over the split, one
Hungarian matching), and the rows' table with its targets."""
import os
import os.path as osp
from pathlib import Path
from typing import Mapping, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import print_log

from pc_kd.experiments.common import build, seeded_config

__all__ = ["KMEANS_RESTARTS", "prepare", "val_scenes", "model_features", "cluster_scores", "label_scores",
           "standardized", "train_runner", "table"]

KMEANS_RESTARTS = 40  # with 10 seedings the best objective still moved a row by up to 9 mIoU; with 40 it did not


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


def room_miou(pred, labels, num_classes: int, ignore_index: int = 255) -> float:
    """mIoU of one room's points under the split's matching: ``pred [N]`` matched class ids (-1: a cluster the
    matching left without a class, counted wrong), ``labels [N]`` (``ignore_index`` skipped); classes absent from
    the room's labels and predictions left out."""
    from pc_kd.evaluation.seg_metric import confusion_matrix, scores_from_confusion

    pred = np.asarray(pred)
    conf = confusion_matrix(np.where(pred < 0, num_classes, pred), np.asarray(labels), num_classes,
                            ignore_index=ignore_index, num_pred=num_classes + 1)
    return scores_from_confusion(conf)["miou"]


def standardized(columns: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    return (columns - reference.mean(0)) / reference.std(0).clamp(min=1e-6)


def train_runner(config, options, work_dir, seed, epochs):
    """Train ``config`` (with ``options`` merged) by the Runner, seeded, and return its trained model."""
    from pc_kd.engine import bare_model, build_runner

    cfg = seeded_config(config, options, seed, work_dir, Path(config).stem)
    cfg.train_cfg.max_epochs = cfg.param_scheduler[0].T_max = epochs
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None  # the demo scores every row itself, below
    runner = build_runner(cfg, config)
    runner.train()
    return bare_model(runner.model)


def table(per_seed, num_scenes, num_classes, rows: Mapping[str, str], targets: Sequence[Tuple[str, str, str, float]]):
    """The markdown table of ``rows`` (``{key: name}``; mean +- std over seeds when there are several) and the
    mIoU ``targets`` (``(name, row, other row, margin)``: met when mean mIoU of ``row`` >= ``other`` + margin; a
    name with ``>`` asks for strictly more). Returns (text, ``{(row, metric): mean}``)."""
    seeds = len(per_seed)
    width = 14 if seeds > 1 else 6
    lines = [f"Hungarian-matched scores on {num_scenes} validation rooms ({num_classes} classes), %, "
             + ("one seed (make demo-full: 3 seeds)" if seeds == 1 else f"mean +- std over {seeds} seeds") + ":",
             f"| {'method':<47s} | " + " | ".join(f"{m:>{width}s}" for m in ("mIoU", "oAcc", "mAcc")) + " |",
             f"|{'-' * 49}|" + "|".join("-" * (width + 2) for _ in range(3)) + "|"]
    means = {}
    for key, name in rows.items():
        cells = []
        for metric in ("miou", "oacc", "macc"):
            values = np.array([rows[key][0][metric] * 100 for rows in per_seed])
            means[key, metric] = values.mean()
            cells.append(f"{values.mean():6.2f}" + (f" +- {values.std():4.2f}" if seeds > 1 else ""))
        lines.append(f"| {name:<47s} | " + " | ".join(f"{c:>{width}s}" for c in cells) + " |")
    miou = {k: means[k, "miou"] for k in rows}
    checks = [(name, miou[a] > miou[b] + margin if " > " in name else miou[a] >= miou[b] + margin)
              for name, a, b, margin in targets]
    lines.append("targets (mIoU): " + ", ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in checks))
    return "\n".join(lines), means

