"""Drive&Segment on synthetic driving frames: LiDAR segments -> masked crops -> a label-free backbone's features ->
dataset-level k-means (k > classes) -> pseudo-label images -> a 2D student, scored on frames of another seed with
one Hungarian matching over the split, beside the trivial baselines.

Rows (``run``): (a) k-means on pixel colours, (b) the pseudo-labels themselves on the pixels they cover,
(c) the student, (d) the student after one self-training round on its own predictions, (e) a random-init
student's features clustered, (f) the same student trained on the GT pixel labels (an upper bound).
"""
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pc_kd.datasets.synthetic.driving import (PIXEL_CLASSES, PIXEL_IGNORE, cam2ego_matrix, lidar2ego_matrix,
                                              make_driving_scene, render_camera, simulate_lidar)
from pc_kd.datasets.image_segmentation import FORMAT as IMAGE_SEGMENTATION_FORMAT
from pc_kd.datasets.synthetic.writer import driving_intrinsic
from pc_kd.evaluation.hungarian import hungarian_miou
from pc_kd.heads.clustering import kmeans, minibatch_kmeans
from pc_kd.models.backbones.image_teachers import TinySegNet
from pc_kd.models.segmentors.image_segments import (ContrastiveCropEncoder, masked_segment_crops, normalise_images,
                                                    segment_features, sliding_window_logits)
from pc_kd.projection.segment_masks import pseudo_label_images, segment_images
from pc_kd.utils.io import atomic_write
from pc_kd.voxel.range_segments import lidar_segments

PSEUDO_LABEL_DATASET = "pseudo_label_dataset"  # in the demo's work dir: the data of the Runner config
BACKBONE = Path(__file__).resolve().parents[2] / "checkpoints" / "tinysegnet_contrastive_synthetic-driving.pth"


@dataclass
class Settings:
    """Everything a run depends on (frames, segments, clustering, student); the defaults are the demo's."""
    image_hw: tuple = (112, 200)
    cameras: tuple = (0.0, 180.0)  # camera yaws (degrees from the ego's heading)
    num_objects: int = 40
    extent: float = 25.0
    detailed: bool = True  # objects built of DETAILED_PARTS (wheels, stripes, heads; paint shared as before)
    train_frames: int = 64
    test_frames: int = 16
    backbone_frames: int = 64
    train_seed: int = 0
    test_seed: int = 1
    backbone_seed: int = 2
    azimuth_cols: int = 900  # the synthetic LiDAR turns in 0.4 degree steps
    splat_radius: int = 1
    crop_size: int = 32
    clusters: int = 12
    kmeans_restarts: int = 5  # every k-means of a row (segments, colours, random features) keeps the best of 5
    student_iters: int = 600
    backbone_iters: int = 600
    backbone_batch: int = 128
    batch_size: int = 8
    lr: float = 2e-3
    window: tuple = (112, 112)
    window_stride: tuple = (56, 44)
    feat_channels: int = 32
    width: int = 24


@dataclass
class Frame:
    """``images [V, 3, H, W]`` float 0..1, ``classes [V, H, W]`` int64 (PIXEL_CLASSES index, PIXEL_IGNORE for the
    sky), ``points [N, 5]`` (x y z intensity ring, the LiDAR frame), ``lidar2img [V, 4, 4]``."""
    images: torch.Tensor
    classes: torch.Tensor
    points: np.ndarray
    lidar2img: torch.Tensor


def make_frames(seed: int, count: int, s: Settings) -> List[Frame]:
    """``count`` synthetic driving key frames of scene seeds ``seed * 1000 + i``, with per-pixel classes."""
    K = np.eye(4)
    K[:3, :3] = driving_intrinsic(s.image_hw)
    frames = []
    for i in range(count):
        scene_seed = seed * 1000 + i
        scene = make_driving_scene(scene_seed, num_objects=s.num_objects, extent=s.extent, detailed=s.detailed)
        points, _ = simulate_lidar(scene, scene_seed)
        images, classes, mats = [], [], []
        for yaw in s.cameras:
            cam2ego = cam2ego_matrix(yaw)
            rgb, cls = render_camera(scene, cam2ego, K[:3, :3], s.image_hw, with_classes=True)
            images.append(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255)
            classes.append(torch.from_numpy(cls.astype(np.int64)))
            mats.append(K @ np.linalg.inv(cam2ego) @ lidar2ego_matrix())
        frames.append(Frame(torch.stack(images), torch.stack(classes), points,
                            torch.as_tensor(np.stack(mats), dtype=torch.float32)))
    return frames


def frame_segment_images(frame: Frame, s: Settings) -> torch.Tensor:
    """The LiDAR segment seen at each pixel ``[V, H, W]``: the object proposals (``lidar_segments``) numbered
    0 .. S - 1 and the frame's ground points as segment S (so that the ground, too, gets a pseudo-class)."""
    seg = lidar_segments(frame.points, frame.points[:, 4], 32, s.azimuth_cols)
    ids = np.where(seg.ground, seg.num_segments, seg.segment)
    return segment_images(torch.from_numpy(frame.points[:, :3].astype(np.float32)), torch.from_numpy(ids),
                          frame.lidar2img, s.image_hw, s.splat_radius)


def collect_segment_features(backbone, frames: Sequence[Frame], s: Settings):
    """Per frame and view: the segment image and the features of its segments. Returns ``features [M, C]`` and
    ``items`` (frame, view, segment id) of each row, and the segment images ``[F][V, H, W]``."""
    features, items, seg_images = [], [], []
    for f, frame in enumerate(frames):
        seg_img = frame_segment_images(frame, s)
        seg_images.append(seg_img)
        for v in range(len(frame.images)):
            crops, ids = masked_segment_crops(frame.images[v], seg_img[v], size=s.crop_size)
            if len(ids):
                features.append(segment_features(backbone, crops))
                items += [(f, v, int(i)) for i in ids]
    return torch.cat(features), items, seg_images


def pseudo_labels(seg_images, items, clusters: torch.Tensor) -> List[torch.Tensor]:
    """Pseudo-label images ``[F][V, H, W]``: each pixel of a (frame, view, segment) item takes its cluster;
    PIXEL_IGNORE elsewhere (pixels of segments too small to crop included)."""
    per_view = {}
    for (f, v, seg), c in zip(items, clusters.tolist()):
        per_view.setdefault((f, v), []).append((seg, c))
    out = []
    for f, seg_img in enumerate(seg_images):
        labels = torch.full_like(seg_img, PIXEL_IGNORE)
        for v in range(seg_img.shape[0]):
            if (f, v) not in per_view:
                continue
            lookup = torch.full((int(seg_img[v].max()) + 1,), -1, dtype=torch.long)
            for seg, c in per_view[(f, v)]:
                lookup[seg] = c
            labels[v] = pseudo_label_images(seg_img[v], lookup, PIXEL_IGNORE)
        out.append(labels)
    return out


def new_student(num_classes: int, s: Settings, backbone_state=None, seed: int = 0) -> TinySegNet:
    """A TinySegNet with ``num_classes`` outputs; its trunk initialised from the backbone's when given."""
    torch.manual_seed(seed)
    net = TinySegNet(num_classes, feat_channels=s.feat_channels, width=s.width)
    if backbone_state is not None:
        net.load_state_dict({k: v for k, v in backbone_state.items() if not k.startswith("classifier")}, strict=False)
    return net


def _optimise(params, steps: int, lr: float, loss_at, log, name: str) -> None:
    """AdamW with a cosine schedule over ``steps``; ``loss_at(it)`` gives the step's loss; a log line per quarter."""
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * 0.01)
    start = time.time()
    for it in range(steps):
        loss = loss_at(it)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (it + 1) % max(1, steps // 4) == 0:
            log(f"{name}: iteration {it + 1}/{steps}, loss {loss.item():.3f} ({time.time() - start:.0f} s)")


def train_student(net: TinySegNet, images: torch.Tensor, labels: torch.Tensor, s: Settings, seed: int,
                  log=print, name: str = "student") -> TinySegNet:
    """Per-pixel cross-entropy on ``labels [B, H, W]`` (PIXEL_IGNORE left out) of ``images [B, 3, H, W]`` (0..1),
    random horizontal flips, AdamW with a cosine schedule."""
    g = torch.Generator().manual_seed(seed)
    x_all = normalise_images(images)
    net.train()

    def loss_at(it):
        idx = torch.randint(len(images), (s.batch_size,), generator=g)
        x, y = x_all[idx], labels[idx]
        flip = torch.rand(len(idx), generator=g) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
        y = torch.where(flip[:, None, None], y.flip(2), y)
        return F.cross_entropy(net(x), y, ignore_index=PIXEL_IGNORE)

    _optimise(net.parameters(), s.student_iters, s.lr, loss_at, log, name)
    return net.eval()


def predict(net: TinySegNet, images: torch.Tensor, s: Settings) -> torch.Tensor:
    """Sliding-window predictions ``[B, H, W]`` of ``images [B, 3, H, W]`` (0..1)."""
    net.eval()
    return sliding_window_logits(net, normalise_images(images), s.window, s.window_stride).argmax(1)


def train_backbone(frames: Sequence[Frame], s: Settings, out: Path, seed: int = 0, log=print) -> dict:
    """The label-free backbone: a TinySegNet trunk trained contrastively (``ContrastiveCropEncoder``) on the masked
    crops of the LiDAR segments of ``frames`` (no labels), saved to ``out`` (float16 state dict). Returns the
    state dict."""
    torch.manual_seed(seed)
    net = TinySegNet(1, feat_channels=s.feat_channels, width=s.width)
    model = ContrastiveCropEncoder(net, s.feat_channels)
    crops = []
    for frame in frames:
        seg_img = frame_segment_images(frame, s)
        crops += [masked_segment_crops(frame.images[v], seg_img[v], size=s.crop_size)[0]
                  for v in range(len(frame.images))]
    crops = torch.cat(crops)
    log(f"label-free backbone: {len(crops)} segment crops of {len(frames)} frames, contrastive training")
    g = torch.Generator().manual_seed(seed)
    _optimise(model.parameters(), s.backbone_iters, s.lr,
              lambda it: model.loss(crops[torch.randperm(len(crops), generator=g)[:s.backbone_batch]], g), log,
              "label-free backbone (contrastive, segment crops)")
    state = {k: v.half() for k, v in net.state_dict().items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        torch.save(state, tmp)
    return {k: v.float() for k, v in state.items()}


def load_backbone(path: Path) -> dict:
    return {k: v.float() for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}


def score_classes(pred: torch.Tensor, gt: torch.Tensor, classes: Sequence[str], row: str) -> dict:
    """One Hungarian matching of ``pred`` (cluster ids) to ``gt`` (indices into ``classes``) over every pixel whose
    ``gt`` is not PIXEL_IGNORE: strict (pixels of unmatched clusters count wrong) and lenient (left out)."""
    keep = gt != PIXEL_IGNORE
    strict = hungarian_miou(pred[keep].numpy(), gt[keep].numpy(), len(classes), ignore_index=PIXEL_IGNORE,
                            unmatched="wrong")
    lenient = hungarian_miou(pred[keep].numpy(), gt[keep].numpy(), len(classes), ignore_index=PIXEL_IGNORE,
                             unmatched="ignore")
    return dict(row=row, miou=100 * strict["miou"], pixel_acc=100 * strict["oacc"],
                miou_unmatched_ignored=100 * lenient["miou"], pixels=int(keep.sum()),
                unmatched_pixels=strict["unmatched_points"],
                iou={c: 100 * float(v) for c, v in zip(classes, strict["iou"])},
                mapping=[int(m) for m in strict["mapping"]])


def _score(pred: torch.Tensor, gt: torch.Tensor, row: str) -> dict:
    return score_classes(pred, gt, PIXEL_CLASSES, row)


def _pixel_features(net: TinySegNet, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        feats = net.forward_features(normalise_images(images))
        return F.interpolate(feats, size=images.shape[2:], mode="bilinear", align_corners=False)


def cluster_pixels(values: torch.Tensor, k: int, seed: int, cosine: bool, restarts: int,
                    sample: int = 20000) -> torch.Tensor:
    """k-means on a random sample of ``values [M, C]``, every row assigned to its nearest centre."""
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(values), generator=g)[:sample]
    centroids, _ = kmeans(values[pick], k, seed=seed, cosine=cosine, restarts=restarts)
    if cosine:
        return (F.normalize(values, dim=1) @ centroids.T).argmax(1)
    return torch.cdist(values, centroids).argmin(1)


def cluster_segments(backbone, train: Sequence[Frame], test: Sequence[Frame], s: Settings, seed: int, log=print):
    """Segments -> features -> dataset-level mini-batch k-means over the training frames' segments -> pseudo-label
    images. Returns the training frames' pseudo-labels ``[F * V, H, W]``, the test frames' ``[F' * V, H, W]`` (their
    segments assigned to the training centroids; None without test frames) and the test segment images
    ``[F'][V, H, W]``."""
    log(f"seed {seed}: LiDAR segments and their features in {len(train)} training frames")
    feats, items, seg_images = collect_segment_features(backbone, train, s)
    centroids, clusters = minibatch_kmeans(feats, s.clusters, batch_size=1024, iters=300, seed=seed,
                                           restarts=s.kmeans_restarts)
    labels = torch.cat(pseudo_labels(seg_images, items, clusters))
    covered = labels != PIXEL_IGNORE
    log(f"seed {seed}: {len(items)} segment views clustered into {s.clusters}; pseudo-labels on "
        f"{100 * covered.float().mean():.1f} % of the training pixels")
    if not test:
        return labels, None, []
    test_feats, test_items, test_seg = collect_segment_features(backbone, test, s)
    test_labels = torch.cat(pseudo_labels(test_seg, test_items, (test_feats @ centroids.T).argmax(1)))
    return labels, test_labels, test_seg


def write_pseudo_label_dataset(out_dir, train: Sequence[Frame], train_targets: torch.Tensor, test: Sequence[Frame],
                               num_targets: int, target: str, classes: Sequence[str] = PIXEL_CLASSES,
                               log=print) -> Path:
    """The frames as an :class:`pc_kd.datasets.ImageSegmentationDataset` under ``out_dir``, for the student's
    training in the Runner (``configs/drive_and_segment/drive-segment-student_*.py``).

    Writes ``images/``, ``targets/`` (``train_targets [F * V, H, W]``: ids ``0..num_targets-1``, PIXEL_IGNORE
    elsewhere) and ``gt/`` (the true classes) as PNGs, then the ann files ``train.json`` (images -> pseudo-labels),
    ``train_gt_targets.json`` (the same images -> their true classes: the upper bound) and ``val.json`` (``test``,
    true classes only). Every file is written atomically and the ann files last, so a complete ``val.json`` means
    a complete dataset. Returns ``out_dir``."""
    import json

    from PIL import Image

    out = Path(out_dir)

    def png(array: torch.Tensor, rel: str) -> str:
        with atomic_write(out / rel) as tmp:
            Image.fromarray(array.numpy().astype(np.uint8)).save(tmp, format="PNG")
        return rel

    def views(frames):
        for f, frame in enumerate(frames):
            for v in range(len(frame.images)):
                yield f"{f:04d}_{v}", frame.images[v], frame.classes[v]

    lists = {"train": [], "train_gt_targets": [], "val": []}
    for i, (name, image, classes_img) in enumerate(views(train)):
        img = png((image * 255).round().permute(1, 2, 0), f"images/train_{name}.png")
        gt = png(classes_img, f"gt/train_{name}.png")
        lists["train"].append(dict(img_path=img, target_path=png(train_targets[i], f"targets/train_{name}.png"),
                                   gt_path=gt))
        lists["train_gt_targets"].append(dict(img_path=img, target_path=gt))
    for name, image, classes_img in views(test):
        lists["val"].append(dict(img_path=png((image * 255).round().permute(1, 2, 0), f"images/val_{name}.png"),
                                 gt_path=png(classes_img, f"gt/val_{name}.png")))
    for split, data_list in lists.items():
        meta = dict(format=IMAGE_SEGMENTATION_FORMAT, classes=list(classes),
                    num_targets=len(classes) if split == "train_gt_targets" else num_targets,
                    target="true classes" if split == "train_gt_targets" else target)
        with atomic_write(out / f"{split}.json") as tmp:
            tmp.write_text(json.dumps(dict(metainfo=meta, data_list=data_list), indent=1))
    log(f"pseudo-label dataset: {len(lists['train'])} training and {len(lists['val'])} val images in {out}")
    return out


def run(s: Settings, seed: int, backbone_state: dict, train: Sequence[Frame], test: Sequence[Frame],
        log=print, keep: dict = None) -> Dict[str, dict]:
    """Every row of one seed, scored on ``test`` (strict Hungarian mIoU, pixel accuracy; unmatched clusters also
    ignored). The seed drives the k-means seeding, the students' heads and their batches."""
    backbone = new_student(1, s, backbone_state).eval()
    train_images = torch.cat([f.images for f in train])
    test_images, test_gt = torch.cat([f.images for f in test]), torch.cat([f.classes for f in test])
    rows = {}
    # (a) pixel colours
    colours = test_images.permute(0, 2, 3, 1).reshape(-1, 3)
    rows["a"] = _score(cluster_pixels(colours, s.clusters, seed, False, s.kmeans_restarts).view_as(test_gt), test_gt,
                       "(a) k-means on pixel colours")
    labels, test_labels, test_seg = cluster_segments(backbone, train, test, s, seed, log)
    # (b) the pseudo-labels of the test frames (their segments assigned to the training centroids)
    gt_covered = torch.where(test_labels != PIXEL_IGNORE, test_gt, torch.full_like(test_gt, PIXEL_IGNORE))
    rows["b"] = _score(test_labels, gt_covered, "(b) pseudo-labels, on the pixels they cover")
    # (c) the student
    student = train_student(new_student(s.clusters, s, backbone_state, seed), train_images, labels, s, seed, log,
                            "student")
    rows["c"] = _score(predict(student, test_images, s), test_gt, "(c) student on the pseudo-labels")
    # (d) one self-training round: a new student on the first one's predictions on the training frames
    own = predict(student, train_images, s)
    second = train_student(new_student(s.clusters, s, backbone_state, seed + 100), train_images, own, s, seed + 100,
                           log, "self-trained student")
    rows["d"] = _score(predict(second, test_images, s), test_gt, "(d) student after one self-training round")
    # (e) a random-init student's features, clustered
    random_net = new_student(s.clusters, s, None, seed).eval()
    pix = _pixel_features(random_net, test_images).permute(0, 2, 3, 1).reshape(-1, s.feat_channels)
    rows["e"] = _score(cluster_pixels(pix, s.clusters, seed, True, s.kmeans_restarts).view_as(test_gt), test_gt,
                       "(e) random-init student's features, k-means")
    # (f) upper bound: the same student on the GT labels
    supervised = train_student(new_student(len(PIXEL_CLASSES), s, backbone_state, seed), train_images,
                               torch.cat([f.classes for f in train]), s, seed, log, "student on GT labels")
    rows["f"] = _score(predict(supervised, test_images, s), test_gt, "(f) student on the GT labels (upper bound)")
    if keep is not None:  # what the pictures show: the first test frame
        keep.update(segments=test_seg[0], pseudo=test_labels[:len(test[0].images)],
                    student=predict(student, test[0].images, s))
    return rows


ROWS = ("a", "b", "c", "d", "e", "f")
TARGETS = ("(c) >= (a) + 15 mIoU", "(c) >= (e) + 10 mIoU", "(d) >= (c) - 1 mIoU", "(b) pixel accuracy >= 60 %")


def targets_met(mean: Dict[str, dict]) -> Dict[str, bool]:
    """The acceptance targets on the rows' means over seeds (strict mIoU)."""
    return {TARGETS[0]: mean["c"]["miou"] >= mean["a"]["miou"] + 15,
            TARGETS[1]: mean["c"]["miou"] >= mean["e"]["miou"] + 10,
            TARGETS[2]: mean["d"]["miou"] >= mean["c"]["miou"] - 1,
            TARGETS[3]: mean["b"]["pixel_acc"] >= 60}


def save_frames(frames: Sequence[Frame], path: Path) -> None:
    """``frames`` as one ``.npz`` (images as uint8: they are renders of uint8 colours), written atomically."""
    arrays = {}
    for i, f in enumerate(frames):
        arrays.update({f"images_{i}": (f.images * 255).round().to(torch.uint8).numpy(),
                       f"classes_{i}": f.classes.to(torch.uint8).numpy(), f"points_{i}": f.points,
                       f"lidar2img_{i}": f.lidar2img.numpy()})
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, count=len(frames), **arrays)


def load_frames(path: Path) -> List[Frame]:
    """What :func:`save_frames` wrote (plain arrays: no pickle is read)."""
    with np.load(path, allow_pickle=False) as z:
        return [Frame(torch.from_numpy(z[f"images_{i}"]).float() / 255, torch.from_numpy(z[f"classes_{i}"]).long(),
                      z[f"points_{i}"], torch.from_numpy(z[f"lidar2img_{i}"])) for i in range(int(z["count"]))]


def _cached_frames(path: Path, seed: int, count: int, s: Settings, log) -> List[Frame]:
    if path.exists():
        return load_frames(path)
    log(f"rendering {count} synthetic driving frames of seed {seed} (LiDAR, {len(s.cameras)} cameras, pixel classes)")
    frames = make_frames(seed, count, s)
    save_frames(frames, path)
    return frames


def format_table(per_seed: Dict[int, Dict[str, dict]]) -> str:
    """Rows' mean +- std over seeds: strict mIoU, pixel accuracy, mIoU with unmatched clusters ignored, IoU per
    class (strict), then the targets."""
    seeds = sorted(per_seed)
    lines = ["| row | mIoU (strict) | pixel acc | mIoU (unmatched ignored) | "
             + " | ".join(f"IoU {c}" for c in PIXEL_CLASSES) + " |", "|---" * (4 + len(PIXEL_CLASSES)) + "|"]
    mean = {}
    for r in ROWS:
        vals = [per_seed[sd][r] for sd in seeds]

        def ms(key, sub=None):
            v = np.array([x[key][sub] if sub else x[key] for x in vals])
            return f"{v.mean():.1f}" + (f" +- {v.std():.1f}" if len(v) > 1 else "")
        mean[r] = {k: float(np.mean([x[k] for x in vals])) for k in ("miou", "pixel_acc")}
        lines.append(f"| {vals[0]['row']} | {ms('miou')} | {ms('pixel_acc')} | {ms('miou_unmatched_ignored')} | "
                     + " | ".join(ms("iou", c) for c in PIXEL_CLASSES) + " |")
    lines.append("")
    lines += [f"- {name}: {'met' if ok else 'NOT met'}" for name, ok in targets_met(mean).items()]
    return "\n".join(lines)


def picture(frame: Frame, keep: dict, mapping: Sequence[int], out_png, view: int = 0,
            classes: Sequence[str] = PIXEL_CLASSES) -> Path:
    """One test camera: the image, its LiDAR segments, the pseudo-labels, the student's prediction (clusters drawn
    in the colour of the class the Hungarian matching gave them; grey: unmatched or none) and the GT classes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pc_kd.visualization.bev import label_palette, save_figure

    palette = label_palette(len(classes))
    grey = np.array([0.85, 0.85, 0.85])

    def by_class(labels):
        lookup = np.array(list(mapping) + [-1] * 256)
        cls = lookup[np.where(labels.numpy() == PIXEL_IGNORE, len(lookup) - 1, labels.numpy())]
        return np.where((cls >= 0)[..., None], palette[np.maximum(cls, 0)], grey)

    seg = keep["segments"][view].numpy()
    rng = np.random.default_rng(0)
    seg_colours = np.vstack([rng.uniform(0.1, 0.95, (int(seg.max()) + 2, 3))])
    seg_rgb = np.where((seg >= 0)[..., None], seg_colours[np.maximum(seg, 0)], grey)
    gt = frame.classes[view].numpy()
    gt_rgb = np.where((gt == PIXEL_IGNORE)[..., None], grey, palette[np.minimum(gt, len(classes) - 1)])
    panels = [(frame.images[view].permute(1, 2, 0).numpy(), "camera"), (seg_rgb, "LiDAR segments (ground: one)"),
              (by_class(keep["pseudo"][view]), "pseudo-labels (matched class colours)"),
              (by_class(keep["student"][view]), "the student's prediction"), (gt_rgb, "ground truth (grey: none)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3))
    for ax, (img, title) in zip(axes, panels):
        ax.imshow(img)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette[i]) for i in range(len(classes))]
    fig.legend(handles, classes, loc="lower center", ncol=len(classes), fontsize=8)
    return save_figure(fig, out_png)


def demo(work_dir, s: Settings, seeds: Sequence[int], backbone_path: Path = BACKBONE, log=print) -> dict:
    """The whole table: frames (cached in ``work_dir``), the label-free backbone (``backbone_path``; trained
    there when absent), every row for each seed (a rerun reuses the finished seeds), the table and a picture."""
    import json

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    tag = f"{s.image_hw[0]}x{s.image_hw[1]}_{len(s.cameras)}cams_{s.num_objects}obj{'_detailed' if s.detailed else ''}"
    train = _cached_frames(work / f"frames_seed{s.train_seed}_{s.train_frames}_{tag}.npz", s.train_seed,
                           s.train_frames, s, log)
    test = _cached_frames(work / f"frames_seed{s.test_seed}_{s.test_frames}_{tag}.npz", s.test_seed, s.test_frames,
                          s, log)
    if Path(backbone_path).exists():
        log(f"label-free backbone: {backbone_path}")
        state = load_backbone(backbone_path)
    else:
        log(f"label-free backbone: {backbone_path} is absent; training it on {s.backbone_frames} frames of seed "
            f"{s.backbone_seed} (contrastive on its segment crops, no labels)")
        frames = _cached_frames(work / f"frames_seed{s.backbone_seed}_{s.backbone_frames}_{tag}.npz", s.backbone_seed,
                                s.backbone_frames, s, log)
        state = train_backbone(frames, s, Path(backbone_path), log=log)
    per_seed = {}
    for seed in seeds:
        out = work / f"rows_seed{seed}.json"
        if out.exists():
            per_seed[seed] = json.loads(out.read_text())
            log(f"seed {seed}: reusing {out}")
            continue
        keep = {} if seed == seeds[0] else None
        per_seed[seed] = run(s, seed, state, train, test, log, keep)
        with atomic_write(out) as tmp:
            tmp.write_text(json.dumps(per_seed[seed], indent=1))
        if keep:
            picture(test[0], keep, per_seed[seed]["c"]["mapping"], work / "pictures" / f"drive_segment_seed{seed}.png")
    dataset = work / PSEUDO_LABEL_DATASET
    if not (dataset / "val.json").exists():  # the student's data for the Runner: seed 0's pseudo-labels
        log(f"seed {seeds[0]}: writing the pseudo-label images for tools/train.py into {dataset}")
        labels, _, _ = cluster_segments(new_student(1, s, state).eval(), train, [], s, seeds[0], log)
        write_pseudo_label_dataset(dataset, train, labels, test, s.clusters,
                                   f"Drive&Segment pseudo-classes (k-means, seed {seeds[0]})", log=log)
    table = format_table(per_seed)
    with atomic_write(work / "table.md") as tmp:
        tmp.write_text(table + "\n")
    return dict(table=table, per_seed=per_seed)
