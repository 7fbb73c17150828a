"""Headless open3d renders of point clouds coloured by labels, RGB, super-points or feature PCA.

open3d's OffscreenRenderer needs no display: with ``EGL_PLATFORM=surfaceless`` (set here when unset) it
renders through Mesa's EGL on a CPU machine. open3d is optional (``pip install 'pc_kd[vis]'``).
"""
import os
from pathlib import Path

import numpy as np

from pc_kd.utils.io import atomic_write

from .bev import label_palette


def _open3d():
    os.environ.setdefault("EGL_PLATFORM", "surfaceless")
    try:  # triton's LLVM must be loaded before the renderer's (Mesa's): importing triton after a render segfaults
        import triton  # noqa: F401
    except ImportError:
        pass
    try:
        import open3d as o3d
    except ImportError as err:
        raise ImportError("rendering needs open3d: pip install 'pc_kd[vis]' (open3d 0.19 renders headless "
                          "with EGL_PLATFORM=surfaceless)") from err
    return o3d


def label_colors(labels: np.ndarray, num_classes: int = None, ignore_index: int = 255) -> np.ndarray:
    """``[N, 3]`` colours in 0..1 of class or cluster ids (grey for ``ignore_index``)."""
    labels = np.asarray(labels).astype(np.int64)
    valid = labels != ignore_index
    k = int(num_classes or (labels[valid].max() + 1 if valid.any() else 1))
    if k <= 20:
        palette = label_palette(k)
    else:  # many segments: a fixed pseudo-random palette
        palette = np.vstack([np.random.default_rng(0).uniform(0.15, 0.95, (k, 3)), [[0.6, 0.6, 0.6]]])
    return palette[np.where(valid, labels % k, k)]


def pca_colors(feats: np.ndarray, mask: np.ndarray = None) -> np.ndarray:
    """First three principal components of ``feats [N, C]`` scaled to 0..1 (1st-99th percentile); points
    outside ``mask`` (e.g. seen by no view) are grey."""
    feats = np.asarray(feats, dtype=np.float64)
    mask = np.ones(len(feats), bool) if mask is None else np.asarray(mask, bool)
    out = np.full((len(feats), 3), 0.6)
    if mask.sum() < 3:
        return out
    x = feats[mask] - feats[mask].mean(0)
    _, _, vt = np.linalg.svd(x[:: max(1, len(x) // 20000)], full_matrices=False)
    proj = x @ vt[:3].T
    lo, hi = np.percentile(proj, 1, axis=0), np.percentile(proj, 99, axis=0)
    out[mask] = np.clip((proj - lo) / np.maximum(hi - lo, 1e-9), 0, 1)
    return out


# box edges over the corner order of pc_kd.structures.Boxes3D.corners (front face 0-3, back face 4-7), plus a
# cross on the front face so the heading shows
BOX_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7), (0, 2),
             (1, 3)]


ISO_EYE = np.array([-0.6, -0.8, 0.9])  # direction from the scene centre to the camera of the ``iso`` view


def cutaway_mask(points: np.ndarray, view: str = "iso", ceiling_fraction: float = 0.12,
                 wall_margin: float = 0.25) -> np.ndarray:
    """``[N]`` bool: the points to keep so that a room's contents show in a render from ``view``.

    Leaves out the top ``ceiling_fraction`` of the height range (the ceiling) and, for the ``iso`` view, the
    points within ``wall_margin`` metres of the two vertical faces of the bounding box on the camera's side (the
    walls between the camera and the room: x = x_min and y = y_min, as the camera looks from -x, -y).
    """
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        return np.zeros(0, bool)
    lo, hi = points.min(0), points.max(0)
    keep = points[:, 2] < hi[2] - ceiling_fraction * (hi[2] - lo[2])
    if view == "iso":
        keep &= (points[:, 0] > lo[0] + wall_margin) & (points[:, 1] > lo[1] + wall_margin)
    return keep


def render_points(points: np.ndarray, colors: np.ndarray, out_png, width: int = 960, height: int = 720,
                  view: str = "iso", point_size: float = 3.0, max_height: float = None, boxes=(),
                  cutaway: bool = False, title: str = None, legend: dict = None, caption: str = None) -> Path:
    """Render ``points [N, 3]`` (metres, z up) with ``colors [N, 3]`` (0..1) to a PNG, atomically.

    ``view``: ``iso`` (from above a corner) or ``top``; ``max_height`` hides points above it; ``cutaway``
    leaves out the ceiling and the walls facing the camera (:func:`cutaway_mask`), for rooms; ``boxes``:
    ``(corners [K, 8, 3], rgb)`` pairs drawn as wire frames (``Boxes3D.corners()`` order). With ``title``,
    ``legend`` (``{name: rgb}``, e.g. class colours) or ``caption`` (what the colours mean), the render is framed
    by matplotlib with them.
    """
    o3d = _open3d()
    points = np.asarray(points, dtype=np.float64)
    colors = np.asarray(colors, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3 or colors.shape != points.shape:
        raise ValueError(f"render_points: points and colors must both be [N, 3], got {points.shape}, {colors.shape}")
    keep = np.ones(len(points), bool)
    if max_height is not None:
        keep &= points[:, 2] < max_height
    if cutaway:
        keep &= cutaway_mask(points, view)
    points, colors = points[keep], colors[keep]
    if len(points) == 0:
        raise ValueError("render_points: no point left to draw (max_height / cutaway removed all)")
    renderer = o3d.visualization.rendering.OffscreenRenderer(width, height)
    renderer.scene.set_background([1.0, 1.0, 1.0, 1.0])
    renderer.scene.view.set_post_processing(False)  # no tone mapping: the pixels keep the given colours
    cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
    cloud.colors = o3d.utility.Vector3dVector(colors)
    material = o3d.visualization.rendering.MaterialRecord()
    material.shader, material.point_size = "defaultUnlit", point_size
    renderer.scene.add_geometry("points", cloud, material)
    line_material = o3d.visualization.rendering.MaterialRecord()
    line_material.shader, line_material.line_width = "unlitLine", 2.0
    for i, (corners, rgb) in enumerate(boxes):
        corners = np.asarray(corners, dtype=np.float64).reshape(-1, 8, 3)
        if len(corners) == 0:
            continue
        lines = np.array([[k * 8 + a, k * 8 + b] for k in range(len(corners)) for a, b in BOX_EDGES])
        frame = o3d.geometry.LineSet(o3d.utility.Vector3dVector(corners.reshape(-1, 3)),
                                     o3d.utility.Vector2iVector(lines))
        frame.colors = o3d.utility.Vector3dVector(np.tile(np.asarray(rgb, dtype=np.float64), (len(lines), 1)))
        renderer.scene.add_geometry(f"boxes{i}", frame, line_material)
    lo, hi = points.min(0), points.max(0)
    centre, extent = (lo + hi) / 2, float(np.linalg.norm(hi - lo))
    if view == "top":
        eye, up = centre + [0.0, 0.0, 1.2 * extent], [0.0, 1.0, 0.0]
    else:
        eye, up = centre + ISO_EYE * extent, [0.0, 0.0, 1.0]
    renderer.setup_camera(50.0, centre, eye, up)
    image = renderer.render_to_image()
    if title or legend or caption:
        return _framed(np.asarray(image), out_png, title, legend, caption)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_png) as tmp:
        png = tmp.with_suffix(".png")
        o3d.io.write_image(str(png), image)
        os.replace(png, tmp)
    return out_png


def _framed(image: np.ndarray, out_png, title: str = None, legend: dict = None, caption: str = None) -> Path:
    """The rendered ``image [H, W, 3]`` in a matplotlib figure with a title, a legend of ``{name: rgb}`` and a
    caption, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    from .bev import save_figure

    h, w = image.shape[:2]
    rows = 0 if not legend else -(-len(legend) // 6)
    fig = plt.figure(figsize=(w / 100, h / 100 + 0.35 * rows + (0.5 if title else 0) + (0.35 if caption else 0)))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.imshow(image)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=13)
    if legend:
        handles = [Patch(color=np.clip(rgb, 0, 1), label=name) for name, rgb in legend.items()]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), frameon=False, fontsize=10)
    if caption:
        fig.text(0.5, (0.35 * rows + 0.05) / fig.get_figheight(), caption, ha="center", va="bottom", fontsize=9,
                 color="0.3")
    top = 1 - (0.5 / fig.get_figheight() if title else 0)
    bottom = (0.35 * rows + (0.35 if caption else 0)) / fig.get_figheight()
    ax.set_position([0, bottom, 1, top - bottom])
    return save_figure(fig, out_png, dpi=100)
