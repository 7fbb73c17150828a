"""Drive&Segment on the REAL nuScenes key frames: LiDAR segments of scene-0523's 40 key frames cut from the six
cameras, described by the ESPNetv2 Cityscapes encoder (trained WITH Cityscapes labels: on real data this is not
label-free), clustered, a 2D student (the same network, a new classifier) trained on the pseudo-labels, scored on
scene-0916 against sparse labels: LiDAR points inside the annotated boxes (their box class) and the points low on
the ground away from every box (road), drawn into the images.
"""
from pathlib import Path
from typing import List, Sequence

import numpy as np
import torch
import torch.nn as nn
from PIL import Image

from pc_kd.datasets.synthetic.driving import PIXEL_IGNORE
from pc_kd.structures.class_names import NUSCENES_BOX_POINT_CLASSES

from pc_kd.models.segmentors.image_segments import normalise_images
from pc_kd.projection.segment_masks import segment_images
from pc_kd.utils.io import atomic_write, load_pickle

from .drive_segment import Frame, Settings, cluster_pixels, cluster_segments, score_classes, train_student

REAL_CLASSES = ("road", "car", "truck", "bus", "pedestrian", "bicycle", "motorcycle", "barrier", "traffic_cone")
ROAD_BELOW_M = -1.5  # LiDAR-frame z below which an unboxed point within ROAD_WITHIN_M counts as road (sensor 1.84 m)
ROAD_WITHIN_M = 30.0


def sparse_point_classes(points: np.ndarray, box_labels: np.ndarray) -> np.ndarray:
    """``[N]`` int64 REAL_CLASSES index per point, -1 unlabelled: the box class of points inside an annotated box
    (``box_labels``: NUSCENES_BOX_POINT_CLASSES index, 255 the ego vehicle), road for unboxed points below
    ROAD_BELOW_M (LiDAR frame) within ROAD_WITHIN_M of the sensor."""
    out = np.full(len(points), -1, np.int64)
    for name in REAL_CLASSES[1:]:
        out[box_labels == NUSCENES_BOX_POINT_CLASSES.index(name)] = REAL_CLASSES.index(name)
    other = box_labels == NUSCENES_BOX_POINT_CLASSES.index("other")
    low = (points[:, 2] < ROAD_BELOW_M) & (np.hypot(points[:, 0], points[:, 1]) < ROAD_WITHIN_M)
    out[other & low] = 0
    return out


def real_frames(point_info_file, image_hw=(225, 400), limit: int = None) -> List[Frame]:
    """The key frames of a pc_kd nuScenes point-info file (``create_nuscenes_point_infos``): six camera images
    resized to ``image_hw``, the sparse class images (nearest labelled point per pixel; PIXEL_IGNORE elsewhere),
    the LiDAR points (x y z intensity ring) and ``lidar2img`` for the resized images."""
    entries = load_pickle(point_info_file, "point info file")["data_list"][:limit]
    h, w = image_hw
    frames = []
    for i, e in enumerate(entries):
        where = f"{point_info_file}: data_list[{i}]"
        for key, path in (("lidar_points.lidar_path", e["lidar_points"]["lidar_path"]),
                          ("pts_semantic_mask_path", e["pts_semantic_mask_path"]),
                          *((f"images[{j}].img_path", cam["img_path"]) for j, cam in enumerate(e["images"]))):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{where}.{key} = {path} does not exist; re-create the point infos "
                                        f"(create_nuscenes_point_infos) from the nuScenes folder they were made from")
        points = np.fromfile(e["lidar_points"]["lidar_path"], np.float32)
        labels = np.fromfile(e["pts_semantic_mask_path"], np.int64)
        if points.size % 5 or len(labels) != points.size // 5:
            raise ValueError(f"{where}: {e['lidar_points']['lidar_path']} holds {points.size} float32 values (expected "
                             f"[N, 5]: x y z intensity ring) and {e['pts_semantic_mask_path']} {len(labels)} int64 "
                             f"labels (expected one per point)")
        points = points.reshape(-1, 5)
        images, mats = [], []
        for cam in e["images"]:
            img = Image.open(cam["img_path"]).convert("RGB")
            scale = np.diag([w / img.width, h / img.height, 1.0, 1.0])
            K = np.eye(4)
            K[:3, :3] = cam["cam2img"]
            mats.append(scale @ K @ np.linalg.inv(cam["cam2world"]))
            pixels = np.array(img.resize((w, h), Image.Resampling.BILINEAR))
            images.append(torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
        lidar2img = torch.as_tensor(np.stack(mats), dtype=torch.float32)
        cls = segment_images(torch.from_numpy(points[:, :3]), torch.from_numpy(sparse_point_classes(points, labels)),
                             lidar2img, image_hw, radius=0)
        frames.append(Frame(torch.stack(images), torch.where(cls < 0, torch.full_like(cls, PIXEL_IGNORE), cls),
                            points, lidar2img))
    return frames


class ESPNetEncoder(nn.Module):
    """The ESPNetv2 encoder's stride-16 map as ``forward_features`` (input normalised with the ImageNet mean / std,
    as the network was trained)."""

    def __init__(self, teacher):
        super().__init__()
        self.net = teacher.model

    def forward_features(self, x):
        return self.net.base_net(x)[3]


class ESPNetStudent(nn.Module):
    """The ESPNetv2 network with a new ``num_classes`` classifier; ``forward`` gives full-size logits."""

    def __init__(self, teacher, num_classes: int, seed: int = 0):
        super().__init__()
        import copy

        self.net = copy.deepcopy(teacher.model)
        old = self.net.bu_dec_l4.merge_layer[3]
        torch.manual_seed(seed)
        self.net.bu_dec_l4.merge_layer[3] = nn.Conv2d(old.in_channels, num_classes, 1)
        for p in self.net.parameters():
            p.requires_grad_(True)

    def forward(self, x):
        return self.net(x)[1]


def run_real(teacher, train: Sequence[Frame], test: Sequence[Frame], s: Settings, seed: int = 0, log=print) -> dict:
    """Rows on the real frames: (a) k-means on pixel colours, (b) the pseudo-labels on the labelled pixels they
    cover, (c) the student; Hungarian over ``classes`` present in the test labels, strict and lenient."""
    present = sorted(set(torch.cat([f.classes for f in test]).unique().tolist()) - {PIXEL_IGNORE})
    classes = [REAL_CLASSES[c] for c in present]
    labels, test_labels, test_seg = cluster_segments(ESPNetEncoder(teacher).eval(), train, test, s, seed, log)
    test_images, test_gt = torch.cat([f.images for f in test]), torch.cat([f.classes for f in test])
    remap = torch.full((256,), PIXEL_IGNORE, dtype=torch.long)
    remap[torch.tensor(present)] = torch.arange(len(present))
    gt = remap[test_gt]
    rows = {}
    keep = gt != PIXEL_IGNORE
    colours = test_images.permute(0, 2, 3, 1)[keep]
    pred = torch.full_like(gt, 0)
    pred[keep] = cluster_pixels(colours, s.clusters, seed, False, s.kmeans_restarts)
    rows["a"] = score_classes(pred, gt, classes, "(a) k-means on pixel colours")
    covered = torch.where(test_labels != PIXEL_IGNORE, gt, torch.full_like(gt, PIXEL_IGNORE))
    rows["b"] = score_classes(test_labels, covered, classes, "(b) pseudo-labels, on the labelled pixels they cover")
    student = train_student(ESPNetStudent(teacher, s.clusters, seed), torch.cat([f.images for f in train]), labels,
                            s, seed, log, "ESPNetv2 student")
    with torch.no_grad():
        pred = torch.cat([student(normalise_images(test_images[i:i + 6])).argmax(1)
                          for i in range(0, len(test_images), 6)])
    rows["c"] = score_classes(pred, gt, classes, "(c) student on the pseudo-labels")
    with torch.no_grad():  # a reference that read labels: the Cityscapes network's own 20 classes, matched alike
        own = torch.cat([teacher.logits(test_images[i:i + 6]).argmax(1) for i in range(0, len(test_images), 6)])
    rows["g"] = score_classes(own, gt, classes, "(g) the Cityscapes network's own classes (trained with labels)")
    keep_for_picture = dict(segments=test_seg[0], pseudo=test_labels[:len(test[0].images)], student=pred[:6])
    return dict(rows=rows, classes=classes, pixels=int(keep.sum()), picture=keep_for_picture,
                gt=gt[:len(test[0].images)])


TEACHER_WEIGHTS = "teachers/espnetv2_s_2.0_city_1024x512.pth"


def format_real_table(result: dict) -> str:
    classes = result["classes"]
    lines = ["| row | mIoU (strict) | pixel acc | mIoU (unmatched ignored) | " + " | ".join(f"IoU {c}" for c in classes)
             + " |", "|---" * (4 + len(classes)) + "|"]
    for r in result["rows"].values():
        lines.append(f"| {r['row']} | {r['miou']:.1f} | {r['pixel_acc']:.1f} | {r['miou_unmatched_ignored']:.1f} | "
                     + " | ".join(f"{r['iou'][c]:.1f}" for c in classes) + " |")
    return "\n".join(lines)


def demo_real(real_root, work_dir, s: Settings, seed: int = 0, log=print) -> dict:
    """Convert the two real scenes (detection, then point infos), read their key frames, run ``run_real`` with the
    ESPNetv2 Cityscapes network (``<real_root>/teachers``), write ``table_real.md`` / ``result_real.json``."""
    import json

    from pc_kd.datasets.converters.nuscenes_points import create_nuscenes_point_infos
    from pc_kd.experiments.real_nuscenes import convert
    from pc_kd.models.backbones.espnetv2 import ESPNetV2Teacher

    root, work = Path(real_root), Path(work_dir)
    det = convert(root / "nuscenes_2scenes", work / "real" / "infos")
    points = {split: create_nuscenes_point_infos(path, root / "nuscenes_2scenes", work / "real" / "points", log=log)
              for split, path in det.items()}
    log(f"reading the real key frames: six cameras at {s.image_hw[0]} x {s.image_hw[1]}, sparse labels from the "
        f"LiDAR points")
    train, test = real_frames(points["train"], s.image_hw), real_frames(points["val"], s.image_hw)
    teacher = ESPNetV2Teacher(weights=str(root / TEACHER_WEIGHTS))
    result = run_real(teacher, train, test, s, seed, log)
    result["table"] = format_real_table(result)
    from .drive_segment import picture

    shown = Frame(test[0].images, result.pop("gt"), test[0].points, test[0].lidar2img)
    picture(shown, result.pop("picture"), result["rows"]["c"]["mapping"], work / "pictures" / "drive_segment_real.png",
            classes=result["classes"], view=0)
    with atomic_write(work / "result_real.json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    with atomic_write(work / "table_real.md") as tmp:
        tmp.write_text(result["table"] + "\n")
    return result
