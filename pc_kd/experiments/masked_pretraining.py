"""Cross-modal masked point modelling on synthetic objects: ACT and ReCon pretrain a point transformer from a 2D
teacher on an unlabelled pool of classes P; a linear SVM on the frozen features of held-out classes D (disjoint from
P) scores them beside a D2 shape histogram, the raw 2D teacher, a random-init encoder and reconstruction alone
(Point-MAE's loss on ReCon's network).

The 2D teacher is a tiny :class:`DepthViT` pretrained without labels (MAE) on depth renders of other objects of the
pool's classes (:func:`train_depth_teacher`; shipped in ``checkpoints/``). ReCon's "text" target is a fixed embedding
of a sentence naming the category (:func:`category_text_embedding`, hashed character trigrams; shipped beside it).
No probe label is read before the SVM.
"""
import json
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch

from pc_kd.datasets.synthetic.objects import POOL_CLASSES, PROBE_CLASSES, VARIANTS, make_object_set, render_depth
from pc_kd.evaluation.linear_probe import d2_histogram, svm_probe
from pc_kd.models.backbones.depth_vit import DepthMAEDecoder, DepthViT, mae_loss, random_mask
from pc_kd.models.pretrainers import ACTAutoencoder, ACTDistiller, ReConPretrainer
from pc_kd.ops.point_groups import group_neighbourhoods
from pc_kd.utils.io import atomic_write

ROOT = Path(__file__).resolve().parents[2]
TEACHER_CKPT = ROOT / "checkpoints" / "depth-vit-tiny_mae_synthetic-objects.pth"
TEXT_EMBEDDINGS = ROOT / "checkpoints" / "object-category-text_trigram-32.json"
TEXT_TEMPLATE = "a point cloud of a {}"
METHODS = ("random-init", "point-mae", "recon", "act")


@dataclass
class Settings:
    """Everything a run depends on; the defaults are the demo's (design.md's CI stand-in). ``methods``: which of
    :data:`METHODS` :func:`demo` pretrains (the configs of configs/act/ and configs/recon/ split them)."""
    methods: tuple = METHODS
    num_points: int = 1024
    num_groups: int = 64
    group_size: int = 32
    pool_per_class: int = 334  # 6 pool classes: 2004 unlabelled shapes
    probe_train_per_class: int = 67  # 6 probe classes: 402 training shapes
    probe_test_per_class: int = 34  # 204 test shapes
    dim: int = 128
    depth: int = 4
    num_heads: int = 4
    decoder_depth: int = 2
    tokenizer_hidden: tuple = (32, 64, 128)
    epochs: int = 3
    act_stage1_epochs: int = 2
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    recon_mask: float = 0.6
    act_mask: float = 0.8
    act_codes: int = 512
    act_prompts: int = 8
    act_decoder_hidden: int = 64
    act_center_targets: bool = True
    image_size: int = 32
    text_dim: int = 32
    teacher_epochs: int = 100
    teacher_shapes_per_class: int = 200


def category_text_embedding(name: str, dim: int = 32) -> np.ndarray:
    """``[dim]`` float32 unit vector standing in for a frozen text encoder's embedding of
    ``TEXT_TEMPLATE.format(name)``: the sum of one seeded Gaussian vector per character trigram of the sentence
    (seeded by the trigram's CRC32), normalised. Sentences that share words share trigrams and point the same way."""
    text = f"  {TEXT_TEMPLATE.format(name)}  "
    out = np.zeros(dim)
    for i in range(len(text) - 2):
        out += np.random.default_rng(zlib.crc32(text[i:i + 3].encode())).normal(size=dim)
    return (out / np.linalg.norm(out)).astype(np.float32)


def write_text_embeddings(path=TEXT_EMBEDDINGS, dim: int = 32) -> Path:
    """Write :func:`category_text_embedding` of every object class (what ``checkpoints/`` ships)."""
    from pc_kd.datasets.synthetic.objects import OBJECT_CLASSES

    data = {"template": TEXT_TEMPLATE, "dim": dim,
            "embeddings": {k: [round(float(x), 6) for x in category_text_embedding(k, dim)] for k in OBJECT_CLASSES}}
    with atomic_write(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=1) + "\n")
    return Path(path)


def load_text_embeddings(path=TEXT_EMBEDDINGS) -> Dict[str, np.ndarray]:
    """The shipped per-category embeddings (``{"template", "dim", "embeddings": {name: [dim]}}``)."""
    data = json.loads(Path(path).read_text())
    return {k: np.asarray(v, np.float32) for k, v in data["embeddings"].items()}


def load_depth_teacher(path=TEACHER_CKPT, s: Settings = Settings()) -> DepthViT:
    if not Path(path).is_file():
        raise FileNotFoundError(f"2D teacher weights not found: {path}; make them with `pc-kd demo-pretrain "
                                f"--make-teacher` (minutes on 2 cores)")
    vit = DepthViT(image_size=s.image_size)
    vit.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return vit.eval()


def _random_views(n: int, g: torch.Generator):
    return torch.rand(n, generator=g) * 2 * np.pi, torch.rand(n, generator=g) * 0.8 - 0.2


def train_depth_teacher(s: Settings, out=TEACHER_CKPT, seed: int = 0, log=print) -> Path:
    """MAE-pretrain a :class:`DepthViT` on depth renders (a random view per step) of objects of the pool's classes
    that are not in the pool (seed 3); no label is read. Writes its state dict (float32) to ``out``."""
    torch.manual_seed(seed)
    points, _ = make_object_set(POOL_CLASSES, s.teacher_shapes_per_class, seed=3, num_points=2 * s.num_points)
    points = torch.from_numpy(points)
    vit = DepthViT(image_size=s.image_size)
    decoder = DepthMAEDecoder(vit)
    params = list(vit.parameters()) + list(decoder.parameters())
    opt = torch.optim.AdamW(params, lr=1.5e-3, weight_decay=0.05)
    steps = s.teacher_epochs * (len(points) // 64)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1.5e-3, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    step, t0 = 0, time.time()
    for epoch in range(s.teacher_epochs):
        order = torch.randperm(len(points), generator=g)
        for i in range(0, len(order) - 63, 64):
            batch = points[order[i:i + 64]]
            images = render_depth(batch, *_random_views(len(batch), g), size=s.image_size)
            loss = mae_loss(vit, decoder, images, 0.75, g)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
        log(f"depth ViT MAE: epoch {epoch + 1}/{s.teacher_epochs} loss {loss.item():.4f} ({time.time() - t0:.0f} s)")
    with atomic_write(out) as tmp:
        torch.save(vit.state_dict(), tmp)
    return Path(out)


@dataclass
class GroupedSet:
    """Point groups of a set of objects: ``neighbourhoods [S, G, K, 3]`` (centred), ``centres [S, G, 3]``,
    ``labels [S]`` (index into ``classes``), and ``points [S, N, 3]``."""
    points: np.ndarray
    neighbourhoods: np.ndarray
    centres: np.ndarray
    labels: np.ndarray
    classes: tuple


def grouped_set(classes: Sequence[str], per_class: int, seed: int, s: Settings, variant: str = "clean"
                ) -> GroupedSet:
    """:func:`make_object_set` of ``classes``, grouped (:func:`group_points`)."""
    points, labels = make_object_set(classes, per_class, seed, s.num_points, variant)
    return group_points(points, labels, classes, s)


def group_points(points: np.ndarray, labels: np.ndarray, classes: Sequence[str], s: Settings) -> GroupedSet:
    """Group ``points [S, N, 3]`` (any source: synthetic objects, ModelNet40 or ScanObjectNN from
    :mod:`pc_kd.datasets.object_h5`) into ``s.num_groups`` FPS groups of ``s.group_size`` points."""
    points = np.ascontiguousarray(points, np.float32)
    if points.ndim != 3 or points.shape[-1] != 3 or len(points) != len(labels):
        raise ValueError(f"group_points: points must be [S, N, 3] with one label each, got {points.shape} and "
                         f"{len(labels)} labels")
    neigh, centres = [], []
    for i in range(0, len(points), 256):
        n, c, _ = group_neighbourhoods(torch.from_numpy(points[i:i + 256]), s.num_groups, s.group_size)
        neigh.append(n.numpy())
        centres.append(c.numpy())
    return GroupedSet(points, np.concatenate(neigh), np.concatenate(centres), np.asarray(labels, np.int64),
                      tuple(classes))


def make_sets(s: Settings) -> Dict[str, GroupedSet]:
    """The unlabelled pool (classes P, seed 0, clean) and the probe's training (seed 1) and test (seed 2) sets of
    classes D in every variant (``<variant>_train``, ``<variant>_test``; clean and two ScanObjectNN-like)."""
    sets = {"pool": grouped_set(POOL_CLASSES, s.pool_per_class, 0, s)}
    for variant in VARIANTS:
        sets[f"{variant}_train"] = grouped_set(PROBE_CLASSES, s.probe_train_per_class, 1, s, variant)
        sets[f"{variant}_test"] = grouped_set(PROBE_CLASSES, s.probe_test_per_class, 2, s, variant)
    return sets


def teacher_image_features(points: np.ndarray, vit: DepthViT, s: Settings, batch: int = 256) -> torch.Tensor:
    """``[S, vit.dim]``: the 2D teacher's CLS feature of one depth render of each of ``points [S, N, 3]`` (azimuth
    45 degrees, elevation 20 degrees; the objects themselves are turned at random)."""
    points = torch.from_numpy(points)
    out = []
    with torch.no_grad():
        for i in range(0, len(points), batch):
            chunk = points[i:i + batch]
            views = torch.full((len(chunk),), np.pi / 4), torch.full((len(chunk),), np.radians(20.0))
            out.append(vit(render_depth(chunk, *views, size=s.image_size)))
    return torch.cat(out)


def teacher_targets(pool: GroupedSet, vit: DepthViT, s: Settings):
    """ReCon's targets per pool shape: the image feature (:func:`teacher_image_features`) and the text embedding
    ``[S, text_dim]`` of its category."""
    text = load_text_embeddings()
    return (teacher_image_features(pool.points, vit, s),
            torch.from_numpy(np.stack([text[pool.classes[k]] for k in pool.labels])))


def augment(neigh: torch.Tensor, centres: torch.Tensor, g: torch.Generator):
    """A random turn about z and per-axis scale in [0.8, 1.2] of the groups and centres, a translation in +-0.1 of
    the centres (Point-MAE's scale-and-translate, plus the up-axis turn)."""
    b = len(neigh)
    yaw = torch.rand(b, generator=g) * 2 * np.pi
    c, s_ = yaw.cos(), yaw.sin()
    rot = torch.zeros(b, 3, 3)
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s_, s_, c, 1
    rot = rot * (0.8 + 0.4 * torch.rand(b, 1, 3, generator=g))  # scales the output axes
    neigh = torch.einsum("bgkj,bij->bgki", neigh, rot)
    centres = torch.einsum("bgj,bij->bgi", centres, rot) + (torch.rand(b, 1, 3, generator=g) - 0.5) * 0.2
    return neigh, centres


def _fit(model, loss_fn, n: int, epochs: int, s: Settings, seed: int, name: str, log=print) -> list:
    """AdamW with a cosine schedule over ``epochs`` of ``n`` shapes; ``loss_fn(index, generator) -> dict``."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    steps = max(1, epochs * (n // s.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, s.lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    model.train()
    history, t0 = [], time.time()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=g)
        total = 0.0
        for i in range(n // s.batch_size):
            losses = loss_fn(order[i * s.batch_size:(i + 1) * s.batch_size], g)
            loss = sum(losses.values())
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            opt.step()
            sched.step()
            total += loss.item()
        history.append(total / max(1, n // s.batch_size))
        log(f"{name}: epoch {epoch + 1}/{epochs} loss {history[-1]:.4f} ({time.time() - t0:.0f} s)")
    model.eval()
    return history


def _tensors(data: GroupedSet):
    return torch.from_numpy(data.neighbourhoods), torch.from_numpy(data.centres)


def pretrain(method: str, sets: Dict[str, GroupedSet], vit: DepthViT, s: Settings, seed: int, log=print):
    """One pretrained encoder (``method`` in :data:`METHODS`; ``random-init`` is not trained). Returns
    ``(model, record)``; the model has ``features(neighbourhoods, centres)``."""
    if method not in METHODS:
        raise ValueError(f"pretrain: unknown method {method!r}; known: {METHODS}")
    torch.manual_seed(seed)
    neigh, centres = _tensors(sets["pool"])
    record, t0 = {"method": method, "seed": seed}, time.time()
    arch = dict(dim=s.dim, depth=s.depth, num_heads=s.num_heads, decoder_depth=s.decoder_depth,
                tokenizer_hidden=s.tokenizer_hidden)
    if method in ("point-mae", "recon"):
        weight = 1.0 if method == "recon" else 0.0
        model = ReConPretrainer(group_size=s.group_size, mask_ratio=s.recon_mask, image_dim=vit.dim,
                                text_dim=s.text_dim, image_weight=weight, text_weight=weight, **arch)
        image, text = teacher_targets(sets["pool"], vit, s) if weight else (None, None)  # Point-MAE reads none

        def recon_loss(i, g):
            targets = (image[i], text[i]) if weight else (None, None)
            return model.loss(*augment(neigh[i], centres[i], g), *targets, g)

        record["loss"] = _fit(model, recon_loss, len(neigh), s.epochs, s, seed, method, log)
    elif method == "act":
        stage1 = ACTAutoencoder(vit, dim=s.dim, num_codes=s.act_codes, num_prompts=s.act_prompts,
                                tokenizer_hidden=s.tokenizer_hidden, decoder_hidden=s.act_decoder_hidden)
        total = max(1, s.act_stage1_epochs * (len(neigh) // s.batch_size))
        state = {"step": 0}

        def stage1_loss(i, g):  # ACT's tau (cosine 1 -> 0.0625) and KL weight (cosine 0 -> 0.1) schedules
            t = min(1.0, state["step"] / total)
            state["step"] += 1
            tau = 0.0625 + (1 - 0.0625) * 0.5 * (1 + np.cos(np.pi * t))
            kl_weight = 0.1 * 0.5 * (1 - np.cos(np.pi * t))
            return stage1.loss(*augment(neigh[i], centres[i], g), tau=tau, kl_weight=kl_weight)

        record["stage1_loss"] = _fit(stage1, stage1_loss, len(neigh), s.act_stage1_epochs, s, seed, "act stage I", log)
        model = ACTDistiller(stage1, mask_ratio=s.act_mask, center_targets=s.act_center_targets, **arch)
        record["loss"] = _fit(model, lambda i, g: model.loss(*augment(neigh[i], centres[i], g), g), len(neigh),
                              s.epochs, s, seed, "act stage II", log)
    else:
        model = ACTDistiller(None, **arch).eval()
    record["pretrain_s"] = round(time.time() - t0, 1)
    return model, record


def encoder_features(model, data: GroupedSet, batch: int = 128) -> np.ndarray:
    neigh, centres = _tensors(data)
    return torch.cat([model.features(neigh[i:i + batch], centres[i:i + batch])
                      for i in range(0, len(neigh), batch)]).numpy()


def probe(feature_fn, sets: Dict[str, GroupedSet]) -> Dict[str, float]:
    """Linear-SVM accuracy on the probe sets of every variant of ``feature_fn(GroupedSet) -> [S, D]``."""
    return {v: svm_probe(feature_fn(sets[f"{v}_train"]), sets[f"{v}_train"].labels, feature_fn(sets[f"{v}_test"]),
                         sets[f"{v}_test"].labels) for v in VARIANTS}


def baseline_rows(sets: Dict[str, GroupedSet], vit: DepthViT, s: Settings) -> Dict[str, Dict[str, float]]:
    """The trivial rows: a D2 shape histogram, and the raw 2D teacher (its CLS of one depth render)."""
    return {"D2 histogram": probe(lambda d: d2_histogram(d.points), sets),
            "2D teacher, one depth render": probe(lambda d: teacher_image_features(d.points, vit, s).numpy(), sets)}


def probe_table(rows: Dict[str, Sequence[Dict[str, float]]]) -> str:
    """Markdown: one row per method, mean +- std over its seeds of the probe accuracy (%) per variant."""
    lines = ["| features | seeds | " + " | ".join(f"{v} OA (%)" for v in VARIANTS) + " |", "|---|---|---|---|---|"]
    for name, results in rows.items():
        cells = []
        for variant in VARIANTS:
            acc = 100 * np.array([r[variant] for r in results])
            cells.append(f"{acc.mean():.1f} ± {acc.std():.1f}" if len(acc) > 1 else f"{acc.mean():.1f}")
        lines.append(f"| {name} | {len(results)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def reconstruction_picture(model: ReConPretrainer, data: GroupedSet, index: int, out_png, seed: int = 0) -> Path:
    """Three views of one shape: all its points, the visible groups (one colour each; the hidden groups left out)
    and the visible groups with the hidden groups' reconstructions (red) at their centres."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pc_kd.visualization.bev import save_figure

    neigh, centres = (torch.from_numpy(x[index:index + 1]) for x in (data.neighbourhoods, data.centres))
    mask = random_mask(1, neigh.shape[1], model.mask_ratio, torch.Generator().manual_seed(seed))
    with torch.no_grad():
        pred = model.decoder(model.encode(neigh, centres, mask)[1], centres, mask).reshape(-1, model.group_size, 3)
    visible = (neigh + centres[:, :, None])[~mask].numpy()  # [V, K, 3]
    rebuilt = (pred + centres[mask][:, None]).reshape(-1, 3).numpy()
    colours = plt.get_cmap("tab20")(np.arange(len(visible)) % 20)
    fig = plt.figure(figsize=(12, 4.2))
    panels = (("input", data.points[index], None), ("visible groups", None, None),
              ("visible + reconstructed (red)", None, rebuilt))
    for i, (title, whole, extra) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1, projection="3d")
        if whole is not None:
            ax.scatter(*whole.T, s=2, c="0.35")
        else:
            for group, colour in zip(visible, colours):
                ax.scatter(*group.T, s=2, color=colour)
        if extra is not None:
            ax.scatter(*extra.T, s=2, c="red")
        ax.set_title(title)
        ax.set_box_aspect((1, 1, 1), zoom=1.5)
        r = float(np.abs(data.points[index]).max())
        ax.set_xlim(-r, r), ax.set_ylim(-r, r), ax.set_zlim(-r, r)
        ax.view_init(20, 45)
        ax.set_axis_off()
    fig.suptitle(f"ReCon: {int(mask.sum())} of {mask.shape[1]} groups hidden ({data.classes[data.labels[index]]})")
    return save_figure(fig, out_png)


def _json_atomic(obj, path) -> None:
    with atomic_write(path) as tmp:
        Path(tmp).write_text(json.dumps(obj, indent=1) + "\n")


NAMES = {"random-init": "random-init encoder (ACT's student)",
         "point-mae": "Point-MAE (ReCon's network, reconstruction only)", "recon": "ReCon", "act": "ACT"}


def demo(work_dir, s: Settings, seeds: Sequence[int] = (0, 1, 2), log=print) -> dict:
    """Pretrain every method of ``s.methods`` per seed and probe it; the trivial rows once. A rerun skips every
    finished (method, seed) (``result_<method>_seed<k>.json``). The table holds every result in ``work_dir`` made
    with the same settings but ``methods`` (so the configs of configs/recon/ and configs/act/ fill one table).
    Writes ``table.md``, ``results.json``, the pretrained weights (``<method>_seed<k>.pth``) and
    ``pictures/recon_masked_groups.png``."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    log(f"masked pretraining demo: making the object sets ({len(POOL_CLASSES)} pool classes x {s.pool_per_class}, "
        f"{len(PROBE_CLASSES)} probe classes x {s.probe_train_per_class} + {s.probe_test_per_class})")
    sets = make_sets(s)
    vit = load_depth_teacher(s=s)
    # the settings as a JSON file holds them (tuples become lists), to compare with what earlier runs wrote
    same = json.loads(json.dumps({k: v for k, v in asdict(s).items() if k != "methods"}))
    baseline_path = work_dir / "result_baselines.json"
    saved = json.loads(baseline_path.read_text()) if baseline_path.is_file() else None
    if saved is not None and saved["settings"] == same:
        baselines = saved["probe"]
    else:
        baselines = baseline_rows(sets, vit, s)
        _json_atomic({"settings": same, "probe": baselines}, baseline_path)
    for method in s.methods:
        for seed in seeds:
            path = work_dir / f"result_{method}_seed{seed}.json"
            if path.is_file() and json.loads(path.read_text())["settings"] == same:
                continue
            log(f"{method}, seed {seed}: pretraining on {len(sets['pool'].labels)} unlabelled shapes")
            model, record = pretrain(method, sets, vit, s, seed, log)
            record["probe"], record["settings"] = probe(lambda d: encoder_features(model, d), sets), same
            log(f"{method}, seed {seed}: linear probe {record['probe']}")
            with atomic_write(work_dir / f"{method}_seed{seed}.pth") as tmp:
                torch.save(model.state_dict(), tmp)
            if method == "recon" and seed == seeds[0]:
                reconstruction_picture(model, sets["clean_test"], 0, work_dir / "pictures" / "recon_masked_groups.png")
            _json_atomic(record, path)
    rows = {name: [r] for name, r in baselines.items()}
    records = []
    for method in METHODS:
        for path in sorted(work_dir.glob(f"result_{method}_seed*.json")):
            record = json.loads(path.read_text())
            if record["settings"] == same:
                rows.setdefault(NAMES[method], []).append(record["probe"])
                records.append(record)
    table = probe_table(rows)
    with atomic_write(work_dir / "table.md") as tmp:
        Path(tmp).write_text(table)
    result = {"settings": same, "baselines": baselines, "runs": records, "table": table,
              "pool_shapes": len(sets["pool"].labels), "seconds": round(time.time() - t0, 1)}
    _json_atomic(result, work_dir / "results.json")
    log(table)
    return result
