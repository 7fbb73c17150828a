"""PartDistill on synthetic part-labelled shapes: 2D part boxes of a faulty synthetic predictor -> 3D knowledge
units -> a sparse-conv point student trained with the forward distillation loss, optionally backward distillation
(re-scoring every unit by the student's own labels once the loss plateaus), scored with part mIoU on held-out
shapes beside the teacher's own vote and a supervised upper bound.

Rows per category: (a) teacher vote (each point takes its highest-confidence unit's label; uncovered points their
nearest covered neighbour's), (b) forward distillation only, (c) forward + backward, (d) supervised (GT parts of the
training shapes). "pre": trained on the training shapes, scored on the test shapes; "TTA": distilled on the test
shapes themselves (their units, no labels) and scored on them. No test label chooses anything: every student is
its last epoch.
"""
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata

from pc_kd.datasets.part_shape_set import ShapeSet, load_shape_set, save_shape_set
from pc_kd.datasets.synthetic.part_shapes import (PART_CATEGORIES, SyntheticPartBoxPredictor, make_part_shape,
                                                  see_shape, shape_views)
from pc_kd.evaluation.part_miou import category_miou, overall_miou
from pc_kd.models.losses.part_distill import pad_units, part_class_weights, part_distill_loss, plateau_reached
from pc_kd.projection.part_units import MAX_COVER, box_units, points_in_box
from pc_kd.structures.part_units import rescore_shapes, unit_score_matrix
from pc_kd.utils.io import atomic_write


@dataclass
class Settings:
    """Everything a run depends on; the defaults are the demo's (design.md's CI stand-in)."""
    categories: tuple = ("chair", "table", "lamp")
    train_shapes: int = 200
    test_shapes: int = 60
    num_points: int = 2048
    num_views: int = 10
    image_hw: tuple = (128, 128)
    train_seed: int = 0
    test_seed: int = 1
    miss: float = 0.3
    wrong: float = 0.2
    whole_object: float = 0.3
    epochs: int = 25
    batch_size: int = 16
    lr: float = 3e-3
    voxel_size: float = 0.04
    channels: tuple = (16, 32, 64, 128)
    plateau_window: int = 5
    plateau_tol: float = 0.01


def shape_units(category: str, shape_seed: int, s: Settings):
    """One shape (``make_part_shape``), its views (``see_shape``), the synthetic predictor's boxes per view
    (seeded by ``shape_seed``) and the knowledge units made of them (``box_units``)."""
    shape = make_part_shape(category, shape_seed, s.num_points)
    views = see_shape(shape, shape_views(s.num_views, s.image_hw, seed=shape_seed), s.image_hw)
    boxes = SyntheticPartBoxPredictor(len(PART_CATEGORIES[category]), s.miss, s.wrong, whole_object=s.whole_object,
                                      seed=shape_seed).predict(views)
    return shape, views, boxes, box_units(views.uv, views.visible, boxes)


def make_shape_set(category: str, seed: int, count: int, s: Settings, log=print) -> ShapeSet:
    """``count`` shapes of scene seeds ``seed * 100000 + i``, each seen from ``s.num_views`` views, its boxes from
    :class:`SyntheticPartBoxPredictor` (seeded per shape) turned into knowledge units (98 % rule)."""
    from tqdm import tqdm

    points, parts, up, ul, us, uc = [], [], [], [], [], []
    for i in tqdm(range(count), desc=f"{category} shapes (seed {seed})", unit="shape", disable=None):
        shape, _, _, units = shape_units(category, seed * 100000 + i, s)
        points.append(shape.points)
        parts.append(shape.part)
        up.append([p.numpy() for p in units.points])
        ul.append(units.labels.numpy())
        us.append(units.scores.numpy())
        uc.append(units.correct.numpy())
    return ShapeSet(category, np.stack(points), np.stack(parts), up, ul, us, uc)


def teacher_vote(data: ShapeSet) -> np.ndarray:
    """Row (a): ``[S, N]`` each point the label of its highest-confidence unit; points no unit covers take their
    nearest covered neighbour's label (all 0 for a shape without any unit)."""
    out = np.zeros(data.part.shape, np.int64)
    for s in range(len(data.points)):
        scores = unit_score_matrix(data.points.shape[1], data.unit_points[s], data.unit_scores[s])
        if scores.shape[1] == 0:
            continue
        best, which = scores.max(1)
        labels = torch.from_numpy(data.unit_labels[s])[which]
        covered = best > 0
        if covered.any() and not covered.all():
            pts = torch.from_numpy(data.points[s])
            nearest = torch.cdist(pts[~covered], pts[covered]).argmin(1)
            labels[~covered] = labels[covered][nearest]
        out[s] = labels.numpy()
    return out


def new_student(num_parts: int, s: Settings, seed: int):
    """A sparse-conv U-Net point segmentor (spconv, ``s.voxel_size`` voxels of the unit sphere; input features: xyz
    and each point's offset in its voxel)."""
    from mmengine.registry import init_default_scope

    import pc_kd.models  # noqa: F401  (registers the models)
    from pc_kd.registry import MODELS

    init_default_scope("pc_kd")
    torch.manual_seed(seed)
    return MODELS.build(dict(
        type="SparseSegmentor", data_preprocessor=dict(type="PointDataPreprocessor", voxel_size=(s.voxel_size,) * 3),
        backbone=dict(type="SpconvUNet", in_channels=6, channels=tuple(s.channels)),
        decode_head=dict(type="SegHead", in_channels=s.channels[0], num_classes=num_parts)))


def _logits(model, points: torch.Tensor) -> torch.Tensor:
    """``points [B, N, 3]`` -> ``[B, N, P]``."""
    clouds = [torch.cat([p, p], 1) for p in points]  # xyz as the features too
    inputs = model.data_preprocessor(dict(inputs=dict(points=clouds)), model.training)["inputs"]
    return model.point_logits(inputs).view(points.shape[0], points.shape[1], -1)


def augment(points: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """The anchor's augmentation of ``points [B, N, 3]``: scale U(0.9, 1.1) per axis, shift U(-0.1, 0.1),
    jitter N(0, 0.01) clipped to 0.02."""
    b = points.shape[0]
    scale = 0.9 + 0.2 * torch.rand(b, 1, 3, generator=g)
    shift = -0.1 + 0.2 * torch.rand(b, 1, 3, generator=g)
    jitter = (0.01 * torch.randn(points.shape, generator=g)).clamp(-0.02, 0.02)
    return points * scale + shift + jitter


@torch.no_grad()
def predict(model, points: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """``[S, N]`` part labels of ``points [S, N, 3]``."""
    model.eval()
    pts = torch.from_numpy(points)
    return torch.cat([_logits(model, pts[i:i + batch_size]).argmax(-1)
                      for i in range(0, len(pts), batch_size)]).numpy()


def train_student(data: ShapeSet, s: Settings, seed: int, mode: str, log=print, balance: bool = False) -> dict:
    """Train a student on ``data`` for ``s.epochs`` epochs (Adam, cosine to lr / 100, batches of ``s.batch_size``,
    the last incomplete batch dropped). ``mode``: ``"forward"`` (the distillation loss with the predictor's
    confidences), ``"backward"`` (forward until :func:`plateau_reached` on the epoch-mean losses, then one snapshot
    of the student's labels on every shape of ``data``, :func:`rescore_units`, and the re-scores replace the
    confidences for the remaining epochs; ``balance``: first :func:`balance_rescores`, a pc_kd option) or
    ``"supervised"`` (cross-entropy on ``data.part``). Returns the model,
    the epoch losses, the epoch after which backward distillation began (None: never) and the re-scores."""
    if mode not in ("forward", "backward", "supervised"):
        raise ValueError(f"train_student: mode must be forward, backward or supervised, got {mode!r}")
    model = new_student(data.num_parts, s, seed)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, s.epochs, eta_min=s.lr / 100)
    g = torch.Generator().manual_seed(seed)
    n = data.points.shape[1]
    scores = [unit_score_matrix(n, up, sc) for up, sc in zip(data.unit_points, data.unit_scores)]
    points, part = torch.from_numpy(data.points), torch.from_numpy(data.part)
    batch = min(s.batch_size, len(points))
    losses, trigger, rescores, start = [], None, None, time.time()
    for epoch in range(s.epochs):
        if mode == "backward" and trigger is not None and rescores is None:  # the snapshot, once
            # balance: the per-part bias taken out (balance_rescores), over every unit of the dataset
            rescores = rescore_shapes(predict(model, data.points), data.unit_points, data.unit_labels, balance)
            scores = [unit_score_matrix(n, up, r.numpy()) for up, r in zip(data.unit_points, rescores)]
            log(f"{data.category} backward distillation from epoch {epoch + 1}: units re-scored by the student")
        model.train()
        order = torch.randperm(len(points), generator=g)
        epoch_losses = []
        for b0 in range(0, len(order) - batch + 1, batch):
            idx = order[b0:b0 + batch]
            logits = _logits(model, augment(points[idx], g))
            if mode == "supervised":
                loss = F.cross_entropy(logits.reshape(-1, data.num_parts), part[idx].reshape(-1))
            else:
                unit_scores, unit_labels = pad_units([scores[i] for i in idx.tolist()],
                                                     [torch.from_numpy(data.unit_labels[i]) for i in idx.tolist()])
                weights = part_class_weights(unit_scores, unit_labels, data.num_parts)
                loss = part_distill_loss(logits, unit_scores, unit_labels, weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            epoch_losses.append(loss.item())
        sched.step()
        losses.append(float(np.mean(epoch_losses)))
        if mode == "backward" and trigger is None and plateau_reached(losses, s.plateau_window, s.plateau_tol):
            trigger = epoch + 1
        if (epoch + 1) % max(1, s.epochs // 5) == 0:
            log(f"{data.category} {mode}: epoch {epoch + 1}/{s.epochs}, loss {losses[-1]:.4f} "
                f"({time.time() - start:.0f} s)")
    return dict(model=model.eval(), losses=losses, trigger=trigger, rescores=rescores)


def binary_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """The probability that a random positive scores above a random negative (ties count half): the ROC AUC."""
    scores, positive = np.asarray(scores, float), np.asarray(positive, bool)
    pos, neg = scores[positive], scores[~positive]
    if not len(pos) or not len(neg):
        raise ValueError(f"binary_auc: need positives and negatives, got {len(pos)} and {len(neg)}")
    ranks = rankdata(np.concatenate([pos, neg]))  # ties get their average rank
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _miou(pred: np.ndarray, data: ShapeSet) -> float:
    return 100 * category_miou(list(pred), list(data.part), range(data.num_parts))


def run_category(train: ShapeSet, test: ShapeSet, s: Settings, seed: int, log=print, tta: bool = True) -> dict:
    """Every row of one category and seed (part mIoU x 100 on ``test``), the trigger epochs and the AUC of the
    re-scores (correct vs wrongly labelled training units)."""
    rows = {"a": _miou(teacher_vote(test), test)}
    runs = {}
    preds = {}
    for key, mode in (("b", "forward"), ("c", "backward"), ("d", "supervised")):
        runs[key] = train_student(train, s, seed, mode, log)
        preds[key] = predict(runs[key]["model"], test.points)
        rows[key] = _miou(preds[key], test)
    out = dict(rows=rows, trigger=runs["c"]["trigger"], first_test_shape={k: v[0].tolist() for k, v in preds.items()})
    if runs["c"]["rescores"] is not None:
        rescored = torch.cat(runs["c"]["rescores"]).numpy()
        correct = np.concatenate(train.unit_correct)
        out["auc_rescores"] = binary_auc(rescored, correct)
        out["auc_confidence"] = binary_auc(np.concatenate(train.unit_scores), correct)
        out["rescores_correct_mean"] = float(rescored[correct].mean())
        out["rescores_wrong_mean"] = float(rescored[~correct].mean())
    rows["c_balanced"] = balanced_row(train, test, s, seed, log)["c_balanced"]
    if tta:  # distil on the test shapes' own units, no labels
        for key, mode in (("b_tta", "forward"), ("c_tta", "backward")):
            rows[key] = _miou(predict(train_student(test, s, seed, mode, log)["model"], test.points), test)
    return out


def balanced_row(train: ShapeSet, test: ShapeSet, s: Settings, seed: int, log=print) -> dict:
    """Row (c'): forward + backward with the re-scores balanced per part (:func:`balance_rescores`)."""
    run = train_student(train, s, seed, "backward", log, balance=True)
    return dict(c_balanced=_miou(predict(run["model"], test.points), test))


ROWS = {"a": "(a) teacher vote", "b": "(b) forward distillation", "c": "(c) forward + backward",
        "c_balanced": "(c') forward + backward, re-scores balanced per part (pc_kd option)",
        "d": "(d) supervised (upper bound)", "b_tta": "(b) forward, TTA (distilled on the test shapes)",
        "c_tta": "(c) forward + backward, TTA"}
TARGETS = ("(b) >= (a) + 5 mIoU", "(c) >= (b) + 3 mIoU", "AUC of the re-scores >= 0.9")


def summarise(per_seed: Dict[int, Dict[str, dict]], categories: Sequence[str]) -> dict:
    """Mean and std over seeds of each row's per-category and overall mIoU, the mean AUC and the targets."""
    seeds = sorted(per_seed)
    table = {}
    for row in ROWS:
        if not all(row in per_seed[sd][c]["rows"] for sd in seeds for c in categories):
            continue
        values = {c: [per_seed[sd][c]["rows"][row] for sd in seeds] for c in categories}
        values["overall"] = [overall_miou({c: per_seed[sd][c]["rows"][row] for c in categories}) for sd in seeds]
        table[row] = {k: (float(np.mean(v)), float(np.std(v))) for k, v in values.items()}
    aucs = [per_seed[sd][c]["auc_rescores"] for sd in seeds for c in categories if "auc_rescores" in per_seed[sd][c]]
    auc = float(np.mean(aucs)) if aucs else float("nan")
    overall = {r: table[r]["overall"][0] for r in table}
    targets = {TARGETS[0]: overall["b"] >= overall["a"] + 5, TARGETS[1]: overall["c"] >= overall["b"] + 3,
               TARGETS[2]: len(aucs) == len(seeds) * len(categories) and auc >= 0.9}
    return dict(table=table, auc=auc, targets=targets)


def format_table(per_seed: Dict[int, Dict[str, dict]], categories: Sequence[str]) -> str:
    summary = summarise(per_seed, categories)
    cols = list(categories) + ["overall"]
    lines = ["| row | " + " | ".join(cols) + " |", "|---" * (1 + len(cols)) + "|"]
    for row, values in summary["table"].items():
        lines.append(f"| {ROWS[row]} | " + " | ".join(f"{values[c][0]:.1f} +- {values[c][1]:.1f}" for c in cols)
                     + " |")
    seeds = sorted(per_seed)
    triggers = {c: [per_seed[sd][c]["trigger"] for sd in seeds] for c in categories}
    lines += ["", f"- backward distillation began after epoch: {triggers}",
              f"- AUC of the re-scores, correct vs wrongly labelled training units (mean over categories and seeds): "
              f"{summary['auc']:.3f}; of the predictor's confidences: "
              f"{np.mean([per_seed[sd][c].get('auc_confidence', np.nan) for sd in seeds for c in categories]):.3f}"]
    lines += [f"- {name}: {'met' if ok else 'NOT met'}" for name, ok in summary["targets"].items()]
    return "\n".join(lines)


def picture(category: str, index: int, s: Settings, predictions: Dict[str, Sequence[int]], out_png) -> Path:
    """Test shape ``index`` of ``category``: one view with the predictor's boxes (solid: right label, dashed: wrong,
    grey: dropped by the 98 % rule) over its visible points, the teacher's vote, each row's 3D parts
    (``predictions``: row -> ``[N]`` labels) and the ground truth, all seen from that view."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pc_kd.visualization.bev import label_palette, save_figure

    parts = PART_CATEGORIES[category]
    shape, views, boxes, units = shape_units(category, s.test_seed * 100000 + index, s)
    single = ShapeSet(category, shape.points[None], shape.part[None], [[u.numpy() for u in units.points]],
                      [units.labels.numpy()], [units.scores.numpy()], [units.correct.numpy()])
    palette = label_palette(len(parts))
    view = 0
    uv, vis = views.uv[view].numpy(), views.visible[view].numpy()
    depth = (views.world2img[view, 2, :3].numpy() @ shape.points.T) + views.world2img[view, 2, 3].numpy()
    order = np.argsort(-depth)  # far points first, near ones drawn over them
    panels = [("view 0: 2D boxes (solid: right part,\ndashed: wrong part, grey: dropped)", None),
              ("teacher vote (a)", teacher_vote(single)[0])]
    panels += [(ROWS[k], np.asarray(v)) for k, v in predictions.items()] + [("ground truth", shape.part)]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.6))
    for ax, (title, labels) in zip(axes, panels):
        if labels is None:
            ax.scatter(uv[vis, 0], uv[vis, 1], s=1, c="0.7")
            for k in range(len(boxes[view].boxes)):
                x0, y0, x1, y1 = boxes[view].boxes[k].tolist()
                inside = points_in_box(views.uv[view], views.visible[view], boxes[view].boxes[k])
                dropped = len(inside) == 0 or len(inside) >= MAX_COVER * vis.sum()
                colour = "0.5" if dropped else palette[int(boxes[view].labels[k])]
                style = "-" if bool(boxes[view].correct[k]) else "--"
                ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec=colour, ls=style, lw=1.5))
        else:
            ax.scatter(uv[order, 0], uv[order, 1], s=2, c=palette[np.asarray(labels)[order]])
        ax.set_xlim(0, s.image_hw[1])
        ax.set_ylim(s.image_hw[0], 0)
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=8, wrap=True)
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette[i]) for i in range(len(parts))]
    fig.legend(handles, parts, loc="lower center", ncol=len(parts), fontsize=8)
    return save_figure(fig, out_png)


def shape_set_files(work_dir, category: str, s: Settings):
    """``[(path, seed, count)]`` of ``category``'s training and test shape sets under ``work_dir``; the name holds
    everything the shapes and their units depend on (the student's settings do not matter here)."""
    tag = (f"{s.num_points}pts_{s.num_views}views_{s.image_hw[0]}x{s.image_hw[1]}_miss{s.miss}_wrong{s.wrong}"
           f"_whole{s.whole_object}")
    return [(Path(work_dir) / f"shapes_{category}_seed{seed}_{count}_{tag}.npz", seed, count)
            for seed, count in ((s.train_seed, s.train_shapes), (s.test_seed, s.test_shapes))]


def write_shape_sets(work_dir, s: Settings, log=print) -> list:
    """Every category's training and test shape sets in ``work_dir`` (made, or kept when there); returns the
    paths (what the Runner configs of configs/partdistill/ read)."""
    out = []
    for category in s.categories:
        for path, seed, count in shape_set_files(work_dir, category, s):
            _cached_set(path, category, seed, count, s, log)
            out.append(path)
    return out


def _cached_set(path: Path, category: str, seed: int, count: int, s: Settings, log) -> ShapeSet:
    if path.exists():
        return load_shape_set(path)
    log(f"{category}: {count} shapes of seed {seed}, {s.num_views} views each, the synthetic predictor's boxes")
    data = make_shape_set(category, seed, count, s, log)
    save_shape_set(data, path)
    return data


def demo(work_dir, s: Settings, seeds: Sequence[int], log=print, tta: bool = True) -> dict:
    """The whole table: shape sets cached in ``work_dir``, every category and seed (a rerun reuses the finished
    ones, ``result_seed<k>_<category>.json``, made with the same settings), ``table.md``."""
    import json

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    settings = json.loads(json.dumps(asdict(s)))  # as a reloaded JSON compares (tuples -> lists)
    per_seed: Dict[int, Dict[str, dict]] = {sd: {} for sd in seeds}
    for category in s.categories:
        train, test = (_cached_set(path, category, seed, count, s, log)
                       for path, seed, count in shape_set_files(work, category, s))
        for seed in seeds:
            out = work / f"result_seed{seed}_{category}.json"
            if out.exists():
                done = json.loads(out.read_text())
                if done.get("settings") == settings and (not tta or "b_tta" in done["rows"]):
                    if "c_balanced" not in done["rows"]:  # a row added later: computed alone
                        log(f"{category}, seed {seed}: row (c')")
                        done["rows"]["c_balanced"] = balanced_row(train, test, s, seed, log)["c_balanced"]
                        with atomic_write(out) as tmp:
                            tmp.write_text(json.dumps(done, indent=1))
                    per_seed[seed][category] = done
                    continue
                log(f"{out} was made with other settings: computing it again")
            log(f"{category}, seed {seed}: rows (a) to (d){' and TTA' if tta else ''}")
            per_seed[seed][category] = dict(run_category(train, test, s, seed, log, tta), settings=settings)
            with atomic_write(out) as tmp:
                tmp.write_text(json.dumps(per_seed[seed][category], indent=1))
    for category in s.categories:
        shown = per_seed[seeds[0]][category].get("first_test_shape")
        if shown:
            picture(category, 0, s, shown, work / "pictures" / f"partdistill_{category}_seed{seeds[0]}.png")
    table = format_table(per_seed, s.categories)
    with atomic_write(work / "table.md") as tmp:
        tmp.write_text(table + "\n")
    return dict(table=table, per_seed=per_seed)
