"""REAL pretrained 2D teachers into REAL 3D. Indoor: the PASCAL VOC ESPNetv2 network fused into ScanNet
scene0000_00's mesh vertices over its 100 posed RGB-D frames with three visibility tests (depth maps, z-buffer,
none); the zero-shot labels of the fused features scored against ScanNet's labels on the classes the teacher names.
Outdoor: the Cityscapes ESPNetv2 network fused into the LiDAR points of every nuScenes key frame of two scenes, a
spconv point student distilled from it on scene-0523 and every row scored on scene-0916's points
(pc_kd.experiments.real_nuscenes_points).

    python tools/demo_real_teachers.py [--part indoor|outdoor|both] [--work-dir work_dirs/demo_real_teachers]
                                       [--real-data DIR] [--frame-step 1] [--iters N]

``--real-data`` defaults to $PC_KD_REAL_DATA. Writes ``table_<part>.md``, ``result_<part>.json`` and pictures
(ScanNet from above coloured by zero-shot label beside the ground truth; a ScanNet frame and a nuScenes camera with
the teacher's mask; nuScenes LiDAR points coloured by fused, distilled and label-trained labels) into the work dir.
"""
import argparse
import json
import os
import textwrap
from pathlib import Path

import numpy as np


def pictures(teacher, scene_dir, results, out_dir, frame: str = "00165"):
    """The scene from above, zero-shot labels (per visibility test) beside ScanNet's; frame ``frame`` with the
    teacher's per-pixel labels."""
    import torch
    from PIL import Image

    from pc_kd.experiments.real_teachers import (ZERO_SHOT_CLASSES, scannet_vertices, truth_classes,
                                                 zero_shot_classes)
    from pc_kd.visualization import plot_bev_labels
    from pc_kd.visualization.bev import label_palette, save_figure

    points, nyu40 = scannet_vertices(scene_dir)
    classes = ZERO_SHOT_CLASSES
    truth = truth_classes(nyu40)
    truth[nyu40 == 0] = 255
    sets, titles = [], []
    for visibility, r in results.items():
        labels = zero_shot_classes(r["labels"])
        labels[r["count"] == 0] = 255
        sets.append(labels)
        titles.append(f"zero-shot, visibility={visibility} ({r['seen'] * 100:.0f} % seen; grey: unseen)")
    sets.append(truth)
    titles.append("ScanNet labels (grey: unannotated)")
    out_dir = Path(out_dir)
    files = [plot_bev_labels(points, sets, titles, classes, out_dir / "scannet_zero_shot_top.png",
                             max_height=float(np.percentile(points[:, 2], 90)))]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = np.asarray(Image.open(Path(scene_dir) / "frames" / f"{frame}.jpg").convert("RGB"))
    labels = teacher.logits(torch.from_numpy(image.astype(np.float32) / 255).permute(2, 0, 1)[None])[0].argmax(0)
    palette = label_palette(len(teacher.class_names))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    axes[0].imshow(image)
    axes[0].set_title(f"ScanNet scene0000_00, frame {frame}")
    axes[1].imshow(0.4 * image / 255 + 0.6 * palette[labels.numpy()])
    present = [int(i) for i in np.unique(labels.numpy())]
    axes[1].set_title("ESPNetv2 (PASCAL VOC) labels: " + ", ".join(teacher.class_names[i] for i in present), fontsize=9)
    for ax in axes:
        ax.axis("off")
    fig.tight_layout()
    files.append(save_figure(fig, out_dir / f"scannet_teacher_mask_{frame}.png"))
    return files


def outdoor_pictures(result, out_dir, frame: int = 20, camera: str = "CAM_FRONT"):
    """Scene-0916 frame ``frame``: the camera ``camera`` with the teacher's mask and with the LiDAR points coloured by
    their fused label; the frame from above (40 m around the car) coloured by the box-derived labels, the fused
    teacher labels (grey: no camera sees the point), the distilled student and the label-trained student."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from pc_kd.datasets import NuScenesPointDataset
    from pc_kd.experiments.real_nuscenes_points import CITYSCAPES_TO_BOX_CLASSES, POINT_CLASSES, class_mapping
    from pc_kd.projection.fusion import load_frames
    from pc_kd.projection.project import project_points
    from pc_kd.structures.class_names import IGNORE_INDEX
    from pc_kd.visualization import plot_bev_labels
    from pc_kd.visualization.bev import label_palette, save_figure

    out_dir, teacher, f = Path(out_dir), result["teacher"], result["frames"][frame]
    info = NuScenesPointDataset(ann_file=str(result["infos"]["val"])).get_data_info(frame)
    view = [i for i, image in enumerate(info["images"]) if image["camera"] == camera][0]
    images, lidar2img, _ = load_frames(info["images"][view:view + 1], "scene-0916", with_depth=False)
    image = images[0].permute(1, 2, 0).numpy()
    mask = teacher.logits(images)[0].argmax(0).numpy()
    uv, _, inside = project_points(torch.from_numpy(f["xyz"].astype(np.float64)), lidar2img, image.shape[:2])
    inside, uv = inside[0].numpy(), uv[0].numpy()
    boxes = label_palette(len(POINT_CLASSES), POINT_CLASSES.index("other"))
    fig, axes = plt.subplots(1, 2, figsize=(16, 5.4))
    axes[0].imshow(0.4 * image + 0.6 * boxes[class_mapping(teacher.class_names, CITYSCAPES_TO_BOX_CLASSES)[mask]])
    present = [teacher.class_names[i] for i in np.unique(mask)]
    axes[0].set_title(textwrap.fill(f"scene-0916 frame {frame}, {camera}: ESPNetv2 (Cityscapes) mask, mapped; it "
                                    "sees " + ", ".join(present), 100), fontsize=8)
    axes[1].imshow(image)
    axes[1].scatter(uv[inside, 0], uv[inside, 1], c=boxes[f["teacher"][inside]], s=5, linewidths=0)
    axes[1].set_title("LiDAR points coloured by their fused teacher label (mapped to the box classes)", fontsize=8)
    for ax in axes:
        ax.axis("off")
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=boxes[i], label=c) for i, c in enumerate(POINT_CLASSES)], loc="lower center",
               ncol=len(POINT_CLASSES), frameon=False, fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    files = [save_figure(fig, out_dir / f"nuscenes_teacher_mask_{camera}_{frame}.png")]
    near = np.abs(f["xyz"][:, :2]).max(1) < 40
    fused = np.where(f["seen"], f["teacher"], IGNORE_INDEX)
    sets = [f["truth"], fused, f["student"], f["labels"]]
    scored = f["truth"] != IGNORE_INDEX
    titles = ["labels from the 3D boxes (grey: the ego vehicle, not scored)",
              f"fused teacher labels ({f['seen'][scored].mean() * 100:.0f} % of the scored points seen; grey: no "
              "camera)",
              "distilled student (no label used; every point)", "student trained with scene-0523's labels"]
    files.append(plot_bev_labels(f["xyz"][near], [s[near] for s in sets], titles, POINT_CLASSES,
                                 out_dir / f"nuscenes_points_top_{frame}.png", background="other"))
    return files


def main(argv=None):
    from mmengine.logging import print_log

    from pc_kd.utils.io import atomic_write

    parser = argparse.ArgumentParser(prog="pc-kd demo-real-teachers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="work_dirs/demo_real_teachers")
    parser.add_argument("--real-data", default=None, help="the real-data folder (default: $PC_KD_REAL_DATA)")
    parser.add_argument("--part", choices=("indoor", "outdoor", "both"), default="both")
    parser.add_argument("--frame-step", type=int, default=1, help="indoor: fuse every n-th frame (default: all 100)")
    parser.add_argument("--iters", type=int, default=None,
                        help="outdoor: training iterations of each student (default: the configs' schedule)")
    parser.add_argument("--select", action="store_true",
                        help="outdoor: compare the student settings on scene-0523 alone (its first 30 key frames "
                        "train, the points seen in its last 10 score; scene-0916 is not read) and write select.md; "
                        "--iters defaults to 600 here")
    args = parser.parse_args(argv)
    root = args.real_data or os.environ.get("PC_KD_REAL_DATA")
    if not root:
        raise FileNotFoundError("no real-data folder: pass --real-data <folder with teachers/, scannet_scene0000_00/ "
                                "and nuscenes_2scenes/> or set PC_KD_REAL_DATA")
    root, work = Path(root).resolve(), Path(args.work_dir)
    log = lambda msg: print_log(msg, "current")  # noqa: E731
    if args.select:
        return select(root, work, args.iters or 600, log)
    tables, record, files = [], {}, []
    if args.part in ("indoor", "both"):
        table, record["indoor"], pictures_ = indoor(root, work, args.frame_step, log)
        tables.append(table)
        files += pictures_
    if args.part in ("outdoor", "both"):
        table, record["outdoor"], pictures_ = outdoor(root, work, args.iters, log)
        tables.append(table)
        files += pictures_
    with atomic_write(work / f"table_{args.part}.md") as tmp:
        Path(tmp).write_text("\n\n".join(tables) + "\n")
    with atomic_write(work / f"result_{args.part}.json") as tmp:
        Path(tmp).write_text(json.dumps(dict(record, pictures=[str(f) for f in files]), indent=1, default=float))
    print("\n\n".join(tables))
    print("pictures:\n" + "\n".join(f"  {f}" for f in files))
    return record


def select(root, work, iters, log):
    """The outdoor settings compared on scene-0523's time split (``--select``); prints and writes select.md."""
    from pc_kd.experiments.real_nuscenes_points import SELECT_FIRST, format_outdoor_table, select_on_train_scene
    from pc_kd.utils.io import atomic_write

    result = select_on_train_scene(root, work / "outdoor", iters, log=log)
    table = (f"Student settings on scene-0523 alone: trained {iters} iterations on its first {SELECT_FIRST} key "
             "frames, scored on the points a camera sees in the rest (box-derived labels, IoU in %):\n\n"
             + format_outdoor_table(result["rows"], result["classes"], scored_on="scene-0523 (last frames)"))
    with atomic_write(work / "select.md") as tmp:
        Path(tmp).write_text(table + "\n")
    print(table)
    return result


def indoor(root, work, frame_step, log):
    """The indoor table: (markdown, its record, pictures)."""
    from pc_kd.experiments.real_teachers import SCANNET_SCENE, format_indoor_table, fuse_and_score_indoor
    from pc_kd.models.backbones.espnetv2 import ESPNetV2Teacher

    scene = root / SCANNET_SCENE
    weights = root / "teachers" / "espnetv2_s_2.0_pascal_384x384.pth"
    teacher = ESPNetV2Teacher(weights=str(weights), input_scale=0.5)
    log(f"demo-real-teachers: {weights.name} fused into {scene.name} (every {frame_step} frame(s))")
    results = fuse_and_score_indoor(teacher, scene, frame_step=frame_step, log=log)
    files = pictures(teacher, scene, results, work / "pictures")
    frames = next(iter(results.values()))["frames"]
    table = (f"ESPNetv2 (PASCAL VOC, s = 2.0, images at half size) fused into {scene.name}'s {frames} frames; "
             "zero-shot labels of the fused features against ScanNet's vertex labels (unseen vertices: 'not these'; "
             "no vertex of this scene is labelled chair):\n\n" + format_indoor_table(results))
    return table, {v: {k: r[k] for k in ("seen", "seconds", "frames", "scores")} for v, r in results.items()}, files


def outdoor(root, work, iters, log):
    """The outdoor table: (markdown, its record, pictures)."""
    from pc_kd.experiments.real_nuscenes_points import CITYSCAPES_TO_BOX_CLASSES, format_outdoor_table, run_outdoor
    from pc_kd.structures.class_names import IGNORE_INDEX

    log("demo-real-teachers: the Cityscapes ESPNetv2 fused into nuScenes LiDAR points and distilled into a point "
        "student on scene-0523, scored on scene-0916")
    result = run_outdoor(root, work / "outdoor", iters, log)
    mapping = ", ".join(f"{k} -> {v}" for k, v in CITYSCAPES_TO_BOX_CLASSES.items())
    fusion = result["fusion"]
    ego = np.mean(np.concatenate([f["truth"] == IGNORE_INDEX for f in result["frames"]]))
    table = ("ESPNetv2 (Cityscapes, s = 2.0, images at half size) fused into the LiDAR points of every key frame; a "
             "spconv point student distilled from the fused features on scene-0523 (no label), every row scored on "
             f"scene-0916's points against the box-derived labels; IoU in %. Teacher classes mapped: {mapping}; "
             "every other class -> other (barrier and traffic_cone have no Cityscapes class and are not scored). "
             f"The ego vehicle's own points ({ego * 100:.0f} % of the sweep) are not scored. Seen: "
             f"{result['seen'] * 100:.1f} % of scene-0916's scored points; fusion "
             f"{fusion['train']['seconds'] + fusion['val']['seconds']:.0f} s for 81 frames x 6 cameras:\n\n"
             + format_outdoor_table(result["rows"], result["classes"]) + "\n\n"
             + "\n".join(f"{name}: {r['iters']} iterations at batch {r['batch_size']}"
                         + (f", trained in {r['train_s'] / 60:.1f} min" if "train_s" in r else "")
                         for name, r in result["training"].items()))
    files = outdoor_pictures(result, work / "pictures")
    slim = dict(rows=result["rows"], training=result["training"], seen=result["seen"], ego_share=float(ego),
                fusion={k: {m: v[m] for m in ("coverage", "seconds", "written", "skipped")} for k, v in fusion.items()})
    return table, slim, files


if __name__ == "__main__":
    from pc_kd.engine import exit_on_user_error

    with exit_on_user_error():
        main()
