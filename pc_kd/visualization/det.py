"""Pictures of 3D detections: a BEV plot of GT vs predicted boxes over the LiDAR points, and the GT and predicted
boxes projected into the camera images (matplotlib, headless, PNG written atomically)."""
import textwrap
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from pc_kd.structures import Boxes3D

from .bev import label_palette, save_figure
from .render import BOX_EDGES


def _bev_window(points: np.ndarray, bev_range) -> Tuple[float, float, float, float]:
    """``(x_min, y_min, x_max, y_max)`` from ``bev_range`` (4 values, or a 6-value point_cloud_range), else the
    points' own extent."""
    if bev_range is not None:
        r = [float(v) for v in bev_range]
        if len(r) not in (4, 6):
            raise ValueError(f"bev_range: expected [x_min, y_min, x_max, y_max] or a point_cloud_range of 6 values, "
                             f"got {len(r)} values")
        return (r[0], r[1], r[3], r[4]) if len(r) == 6 else tuple(r)
    if not len(points):
        return (-32.0, -32.0, 32.0, 32.0)
    half = float(np.ceil(np.abs(points[:, :2]).max()))
    return (-half, -half, half, half)


def plot_bev_detections(points: np.ndarray, gt_boxes: Boxes3D, gt_labels, pred_boxes: Boxes3D, pred_labels,
                        pred_scores, classes: Sequence[str], out_png, score_threshold: float = 0.3,
                        bev_range: Optional[Sequence[float]] = None, title: str = "") -> Path:
    """Top view of ``points [N, >=3]`` (LiDAR frame) with the GT boxes (dashed) and the predictions scoring at
    least ``score_threshold`` (solid), both in class colours; a line from the centre to the front shows the
    heading. The view covers ``bev_range`` (``[x_min, y_min, x_max, y_max]`` or the config's 6-value
    ``point_cloud_range``; default: the points' extent). The title says the threshold and how many predictions it
    shows of how many."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    palette = label_palette(len(classes))
    x0, y0, x1, y1 = _bev_window(points, bev_range)
    fig, ax = plt.subplots(figsize=(8, 8.6))
    keep = (points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)
    ax.scatter(points[keep, 0], points[keep, 1], s=0.3, c="0.6", linewidths=0)

    def draw(boxes, labels, style):
        for corners, box, label in zip(boxes.bev_corners().numpy(), boxes.tensor.numpy(), np.asarray(labels)):
            ring = np.vstack([corners, corners[:1]])
            ax.plot(ring[:, 0], ring[:, 1], style, color=palette[int(label)], lw=1.2)
            front = (corners[0] + corners[3]) / 2
            ax.plot([box[0], front[0]], [box[1], front[1]], "-", color=palette[int(label)], lw=1.2)

    draw(gt_boxes, gt_labels, "--")
    sel = np.asarray(pred_scores) >= score_threshold
    draw(pred_boxes[np.flatnonzero(sel).tolist()] if len(pred_boxes) else pred_boxes, np.asarray(pred_labels)[sel],
         "-")
    present = sorted(set(np.asarray(gt_labels).tolist()) | set(np.asarray(pred_labels)[sel].tolist()))
    handles = [Line2D([], [], color="0.2", ls="--", label="ground truth"),
               Line2D([], [], color="0.2", ls="-", label="prediction")] + [
        Line2D([], [], color=palette[int(c)], lw=3, label=classes[int(c)]) for c in present]
    ax.legend(handles=handles, loc="upper right", fontsize=8)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.set_xlabel("x (m, LiDAR frame)")
    ax.set_ylabel("y (m)")
    shown = f"predictions with score >= {score_threshold:g}: {int(sel.sum())} of {len(sel)} drawn"
    heading = textwrap.fill(title or "BEV: ground truth (dashed) and predictions (solid)", 70)
    ax.set_title(f"{heading}\n{shown}", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out_png)


def box_edges_in_image(corners: np.ndarray, lidar2img: np.ndarray, min_depth: float = 0.1) -> np.ndarray:
    """Image segments of box edges: ``corners [K, 8, 3]`` (LiDAR frame, :meth:`Boxes3D.corners` order) projected
    by one camera's ``lidar2img [4, 4]``; an edge is kept when both ends lie at least ``min_depth`` metres in
    front of the camera. Returns ``[E, 3, 2]``: per edge the two end pixels (u, v) and (box index, 0)."""
    corners = np.asarray(corners, dtype=np.float64).reshape(-1, 8, 3)
    if not len(corners):
        return np.zeros((0, 3, 2))
    pts = np.concatenate([corners.reshape(-1, 3), np.ones((corners.shape[0] * 8, 1))], 1) @ np.asarray(
        lidar2img, dtype=np.float64).T
    depth = pts[:, 2].reshape(-1, 8)
    uv = (pts[:, :2] / np.maximum(pts[:, 2:3], 1e-6)).reshape(-1, 8, 2)
    segments = [np.stack([uv[k, a], uv[k, b], [k, 0]]) for k in range(len(corners)) for a, b in BOX_EDGES
                if depth[k, a] > min_depth and depth[k, b] > min_depth]
    return np.stack(segments) if segments else np.zeros((0, 3, 2))


def draw_camera_detections(images: Sequence[np.ndarray], lidar2img: np.ndarray, boxes: Boxes3D, labels, scores,
                           classes: Sequence[str], out_png, cam_names: Optional[Sequence[str]] = None,
                           score_threshold: float = 0.3, columns: int = 3, gt_boxes: Optional[Boxes3D] = None,
                           gt_labels=None, title: str = "") -> Path:
    """The camera images (``[H, W, 3]`` uint8 or 0..1 floats, rig order) with the predicted boxes scoring at
    least ``score_threshold`` (solid) and, when given, the ground-truth boxes (dashed), in class colours,
    projected by ``lidar2img [V, 4, 4]`` (:func:`box_edges_in_image`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    palette = label_palette(len(classes))
    sel = np.flatnonzero(np.asarray(scores) >= score_threshold).tolist()
    layers = [(boxes[sel].corners().numpy() if sel else np.zeros((0, 8, 3)), np.asarray(labels)[sel], "-")]
    if gt_boxes is not None and len(gt_boxes):
        layers.insert(0, (gt_boxes.corners().numpy(), np.asarray(gt_labels), "--"))
    rows = int(np.ceil(len(images) / columns))
    h, w = images[0].shape[:2]
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 4 * rows * h / w + 0.8), squeeze=False)
    for v, ax in enumerate(axes.flat):
        ax.axis("off")
        if v >= len(images):
            continue
        ax.imshow(images[v])
        for corners, box_labels, style in layers:
            for (a, b, (k, _)) in box_edges_in_image(corners, lidar2img[v]):
                ax.plot([a[0], b[0]], [a[1], b[1]], style, color=palette[int(box_labels[int(k)])], lw=1.0)
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        if cam_names:
            ax.set_title(cam_names[v], fontsize=9)
    present = sorted(set(np.concatenate([layer[1] for layer in layers]).astype(int).tolist()))
    handles = [Line2D([], [], color="k", ls="--", label="ground truth"), Line2D([], [], color="k", label="prediction")]
    handles += [Line2D([], [], color=palette[c], label=classes[c]) for c in present]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False)
    fig.suptitle(title or f"ground truth (dashed) and predictions (score >= {score_threshold})", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 0.97))
    return save_figure(fig, out_png)


def plot_depth_comparison(images: Sequence[np.ndarray], lidar_depth: np.ndarray, pred_depth: np.ndarray,
                          cam_names: Sequence[str], out_png, title: str = "", max_depth: float = 60.0) -> Path:
    """Per camera (one row each): the image (``[H, W, 3]``, 0..1 or uint8), the LiDAR depth (``lidar_depth
    [V, h, w]`` metres, 0 = none, drawn blank) and the predicted depth (``pred_depth [V, h, w]`` metres) on one
    colour scale up to ``max_depth``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views = len(images)
    fig, axes = plt.subplots(views, 3, figsize=(12, 1.45 * views + 0.6), squeeze=False)
    for v in range(views):
        lidar = np.ma.masked_where(lidar_depth[v] <= 0, lidar_depth[v])
        panels = [(np.clip(np.asarray(images[v], dtype=float) / (255.0 if np.asarray(images[v]).dtype == np.uint8
                                                                 else 1.0), 0, 1), "image"),
                  (lidar, "LiDAR depth (nearest point per cell)"), (pred_depth[v], "predicted depth")]
        for ax, (data, name) in zip(axes[v], panels):
            shown = ax.imshow(data, cmap=None if data.ndim == 3 else "turbo", vmin=0, vmax=max_depth,
                              interpolation="nearest", aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
            if v == 0:
                ax.set_title(name, fontsize=9)
        axes[v][0].set_ylabel(cam_names[v] if v < len(cam_names) else f"view {v}", fontsize=8)
    fig.colorbar(shown, ax=axes[:, 1:].ravel().tolist(), shrink=0.6, label="metres")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, out_png)
