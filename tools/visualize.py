"""Render a scene of a dataset config to PNG with open3d (headless), coloured by what you want to look at.

    python tools/visualize.py CONFIG [--split val] [--index 0]
        [--color gt|rgb|superpoints|fused|student|clusters|errors] [--checkpoint CKPT] [--out scene.png]
        [--view iso|top] [--no-cutaway] [--show]

gt: ground-truth classes; rgb: point colours; superpoints: super-point ids (<superpoint_dir>/<scene>.npy);
fused: PCA of the fused 2D features (<feature_dir>/<scene>.npz, unseen points grey); student: PCA of a
distilled student's features (--checkpoint); clusters: the student's super-point k-means clusters (one per
class), each drawn in the colour of the class it is Hungarian-matched to; errors: those clusters against the
labels, wrong points red. The picture has a title, a legend (class colours) or a caption saying what the
colours mean; the ceiling and the walls facing the camera are cut away (``--no-cutaway`` keeps them).
``--show`` opens a window where a display exists.
"""
import argparse
import os
from pathlib import Path

import numpy as np
import torch

from pc_kd.engine.config_checks import add_config_options, load_checked_config

UNMATCHED = [0.1, 0.1, 0.1]  # a cluster no class was matched to


def scene_arrays(cfg, split, index):
    from mmengine.registry import init_default_scope

    from pc_kd.registry import DATASETS

    init_default_scope(cfg.get("default_scope", "pc_kd"))
    ds_cfg = cfg[f"{split}_dataloader"]["dataset"].copy()
    dataset = DATASETS.build(ds_cfg)
    if not 0 <= index < len(dataset):
        raise IndexError(f"--index {index}: the {split} set has {len(dataset)} scenes")
    return dataset, dataset.prepare_data(index), dataset.get_data_info(index)


def student_features(cfg, checkpoint, dataset, index):
    from pc_kd.engine import load_local_checkpoint
    from pc_kd.registry import MODELS

    model = MODELS.build(cfg.model)
    state = load_local_checkpoint(checkpoint, map_location="cpu")
    model.load_state_dict(state.get("state_dict", state))
    model.eval()
    from mmengine.dataset import pseudo_collate

    batch = pseudo_collate([dataset[index]])
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        return model.point_features_list(data["inputs"])[0], data["data_samples"][0]


def main(argv=None):
    from pc_kd.evaluation import hungarian_miou
    from pc_kd.heads import assign_clusters, kmeans, segment_pool
    from pc_kd.visualization import label_colors, label_palette, pca_colors, render_points

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="the config whose dataset holds the scene")
    parser.add_argument("--split", default="val", choices=["train", "val", "test"], help="which dataloader's dataset")
    parser.add_argument("--index", type=int, default=0, help="scene index in that dataset")
    parser.add_argument("--color", default="gt", choices=["gt", "rgb", "superpoints", "fused", "student", "clusters", "errors"],
                        help="what colours the points: labels, RGB, super-points, fused teacher features (PCA), "
                             "student features (PCA), their clusters (as matched classes) or errors (wrong "
                             "points red)")
    parser.add_argument("--checkpoint", help="student checkpoint (for --color student / clusters)")
    parser.add_argument("--out", help="PNG path (default: work_dirs/vis/<scene>_<color>.png)")
    parser.add_argument("--view", default="iso", choices=["iso", "top"], help="camera: oblique or from above")
    parser.add_argument("--max-height", type=float, default=None, help="hide points above this height (m)")
    parser.add_argument("--no-cutaway", action="store_true",
                        help="keep the ceiling and the walls facing the camera (left out by default)")
    parser.add_argument("--show", action="store_true", help="open a window too (needs a display)")
    add_config_options(parser)
    args = parser.parse_args(argv)
    cfg = load_checked_config(args.config, args.cfg_options)
    dataset, results, info = scene_arrays(cfg, args.split, args.index)
    scene = Path(info["lidar_path"]).stem
    sample = results["data_samples"]
    points = results["inputs"]["points"][:, :3].numpy()
    classes = list(dataset.metainfo["classes"])
    palette = label_palette(len(classes))
    class_legend = {name: palette[i] for i, name in enumerate(classes)}
    legend, caption = None, None
    if args.color == "gt":
        colors = label_colors(sample.gt_pts_seg.pts_semantic_mask.numpy(), len(classes))
        legend, caption = class_legend, "ground-truth classes (grey: unlabelled)"
    elif args.color == "rgb":
        colors = results["inputs"]["points"][:, 3:6].numpy().clip(0, 1)
        caption = "the points' own colours"
    elif args.color == "superpoints":
        segments = np.load(Path(cfg.superpoint_dir) / f"{scene}.npy")
        colors = label_colors(segments)
        caption = f"one colour per super-point ({len(np.unique(segments))} super-points)"
    elif args.color == "fused":
        fused = np.load(Path(cfg.feature_dir) / f"{scene}.npz")
        colors = pca_colors(fused["feats"].astype(np.float32), fused["count"] > 0)
        caption = ("fused 2D teacher features: first 3 principal components as RGB (similar colour = similar "
                   "feature); grey: seen by no camera")
    else:
        if not args.checkpoint:
            parser.error(f"--color {args.color} needs --checkpoint")
        feats, s = student_features(cfg, args.checkpoint, dataset, args.index)
        if args.color == "student":
            colors = pca_colors(feats.numpy())
            caption = "student features: first 3 principal components as RGB (similar colour = similar feature)"
        else:
            seg = s.superpoints
            centroids, _ = kmeans(segment_pool(feats, seg)[0], len(classes))
            clusters = assign_clusters(feats, centroids, seg).numpy()
            gt = sample.gt_pts_seg.pts_semantic_mask.numpy()
            match = hungarian_miou(clusters, gt, len(classes), ignore_index=255)
            predicted = match["mapping"][clusters]  # each cluster shown as the class it was matched to
            if args.color == "clusters":
                colors = label_colors(np.where(predicted >= 0, predicted, 255), len(classes))
                colors[predicted < 0] = UNMATCHED
                legend = {**class_legend, "unmatched cluster": UNMATCHED}
                caption = (f"student clusters, each drawn as its Hungarian-matched class (this scene: mIoU "
                           f"{100 * match['miou']:.1f})")
            else:
                wrong = (predicted != gt) & (gt != 255)
                colors = np.where(wrong[:, None], [0.85, 0.1, 0.1], [0.75, 0.75, 0.75])
                colors[gt == 255] = [0.35, 0.35, 0.35]
                legend = {"wrong": [0.85, 0.1, 0.1], "right": [0.75, 0.75, 0.75], "unlabelled": [0.35, 0.35, 0.35]}
                caption = (f"student clusters (Hungarian-matched to classes) against the labels: "
                           f"{100 * wrong.mean():.1f} % of the points wrong")
    out = args.out or os.path.join("work_dirs", "vis", f"{scene}_{args.color}.png")
    title = f"{scene} ({args.split} {args.index}): {args.color}"
    png = render_points(points, colors, out, view=args.view, max_height=args.max_height,
                        cutaway=not args.no_cutaway, title=title, legend=legend, caption=caption)
    print(f"picture: {png}")
    if args.show and os.environ.get("DISPLAY"):
        import open3d as o3d

        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
        cloud.colors = o3d.utility.Vector3dVector(colors)
        o3d.visualization.draw_geometries([cloud], window_name=f"{scene} ({args.color})")
    return png


if __name__ == "__main__":
    from pc_kd.engine import exit_on_user_error

    with exit_on_user_error():
        main()
