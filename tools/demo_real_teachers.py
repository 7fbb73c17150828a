"""A REAL pretrained 2D teacher in a REAL scan: the PASCAL VOC ESPNetv2 network fused into ScanNet scene0000_00's
mesh vertices over its 100 posed RGB-D frames with three visibility tests (depth maps, z-buffer, none); the
zero-shot labels of the fused features scored against ScanNet's labels on the classes the teacher names.

    python tools/demo_real_teachers.py --work-dir work_dirs/demo_real_teachers [--real-data DIR] [--frame-step 1]

``--real-data`` defaults to $PC_KD_REAL_DATA. Writes ``table.md``, ``result.json`` and pictures (the scene from
above coloured by zero-shot label beside the ground truth; one frame with the teacher's mask) into the work dir.
"""
import argparse
import json
import os
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


def main(argv=None):
    from mmengine.logging import print_log

    from pc_kd.experiments.real_teachers import SCANNET_SCENE, format_indoor_table, fuse_and_score_indoor
    from pc_kd.models.backbones.espnetv2 import ESPNetV2Teacher
    from pc_kd.utils.io import atomic_write

    parser = argparse.ArgumentParser(prog="pc-kd demo-real-teachers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="work_dirs/demo_real_teachers")
    parser.add_argument("--real-data", default=None, help="the real-data folder (default: $PC_KD_REAL_DATA)")
    parser.add_argument("--frame-step", type=int, default=1, help="fuse every n-th frame (default: all 100)")
    args = parser.parse_args(argv)
    root = args.real_data or os.environ.get("PC_KD_REAL_DATA")
    if not root:
        raise FileNotFoundError("no real-data folder: pass --real-data <folder with teachers/ and "
                                f"{SCANNET_SCENE}/> or set PC_KD_REAL_DATA")
    root, work = Path(root).resolve(), Path(args.work_dir)
    scene = root / SCANNET_SCENE
    weights = root / "teachers" / "espnetv2_s_2.0_pascal_384x384.pth"
    teacher = ESPNetV2Teacher(weights=str(weights), input_scale=0.5)
    print_log(f"demo-real-teachers: {weights.name} fused into {scene.name} (every {args.frame_step} frame(s))",
              "current")
    results = fuse_and_score_indoor(teacher, scene, frame_step=args.frame_step,
                                    log=lambda msg: print_log(msg, "current"))
    files = pictures(teacher, scene, results, work / "pictures")
    frames = next(iter(results.values()))["frames"]
    table = (f"ESPNetv2 (PASCAL VOC, s = 2.0, images at half size) fused into {scene.name}'s {frames} frames; "
             "zero-shot labels of the fused features against ScanNet's vertex labels (unseen vertices: 'not these'; "
             "no vertex of this scene is labelled chair):\n\n" + format_indoor_table(results))
    with atomic_write(work / "table.md") as tmp:
        Path(tmp).write_text(table + "\n")
    slim = {v: {k: r[k] for k in ("seen", "seconds", "frames", "scores")} for v, r in results.items()}
    with atomic_write(work / "result.json") as tmp:
        Path(tmp).write_text(json.dumps(dict(indoor=slim, pictures=[str(f) for f in files]), indent=1, default=float))
    print(table)
    print("pictures:\n" + "\n".join(f"  {f}" for f in files))
    return results


if __name__ == "__main__":
    from pc_kd.engine import exit_on_user_error

    with exit_on_user_error():
        main()
