"""Bird's-eye-view pictures of labelled point clouds (matplotlib, headless), saved as PNG."""
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

from pc_kd.utils.io import atomic_write


BACKGROUND_COLOUR = (0.86, 0.82, 0.72)  # pale sand: a class most points have, so the others stand out


def label_palette(num_classes: int, background: int = None) -> np.ndarray:
    """``[num_classes + 1, 3]`` distinct colours in [0, 1]; the last row (grey) is for ignored labels. Class
    ``background`` (e.g. ``other`` or ground, which fills most of a sweep), if given, gets :data:`BACKGROUND_COLOUR`."""
    import matplotlib

    if num_classes <= 9:  # tab10 without its grey, which would read as "ignored"
        colours = np.array([matplotlib.colormaps["tab10"](i)[:3] for i in (0, 1, 2, 3, 4, 5, 6, 8, 9)][:num_classes])
    else:
        cmap = matplotlib.colormaps["tab20"] if num_classes > 10 else matplotlib.colormaps["tab10"]
        colours = np.array([cmap(i % cmap.N)[:3] for i in range(num_classes)])
    if background is not None:
        colours[background] = BACKGROUND_COLOUR
    return np.vstack([colours, [0.6, 0.6, 0.6]])


def plot_bev_labels(points: np.ndarray, label_sets: Sequence[np.ndarray], titles: Sequence[str],
                    classes: Sequence[str], out_png, ignore_index: int = 255, max_height: float = None,
                    background: str = None) -> Path:
    """Side-by-side top views of ``points [N, >=3]`` coloured by each of ``label_sets`` (``[N]`` class ids).

    Points higher than ``max_height`` (e.g. a ceiling) are left out so the room's contents show. ``background``
    names a class drawn pale (:func:`label_palette`), so that the rarer ones stand out.
    Written atomically to ``out_png``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    keep = np.ones(len(points), bool) if max_height is None else points[:, 2] < max_height
    palette = label_palette(len(classes), None if background is None else list(classes).index(background))
    fig, axes = plt.subplots(1, len(label_sets), figsize=(6 * len(label_sets), 6), squeeze=False)
    for ax, labels, title in zip(axes[0], label_sets, titles):
        lab = np.where(labels == ignore_index, len(classes), labels)[keep]
        ax.scatter(points[keep, 0], points[keep, 1], c=palette[lab], s=1.5, linewidths=0)
        ax.set_title("\n".join(textwrap.fill(line, 60) for line in title.split("\n")), fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlabel("x (m)")
        ax.set_ylabel("y (m)")
    handles = [Patch(color=palette[i], label=name) for i, name in enumerate(classes)]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(classes), 10), frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 0.96))
    return save_figure(fig, out_png)


def save_figure(fig, out_png, dpi: int = 110) -> Path:
    """Write a matplotlib figure as PNG atomically (parent folders made) and close it."""
    import matplotlib.pyplot as plt

    out_png = Path(out_png)
    with atomic_write(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return out_png


def plot_bev_maps(rows: Sequence[Sequence[np.ndarray]], titles: Sequence[Sequence[str]], extent: Sequence[float],
                  out_png, keypoints: np.ndarray = None, row_labels: Sequence[str] = ()) -> Path:
    """A grid of BEV maps (``rows`` of ``[H, W]`` arrays, rows along y, cell (0, 0) at ``(x_min, y_min)``), each
    row on one colour scale, with ``keypoints [N, K, 2]`` (metres, the maps' frame) drawn on every panel.
    ``extent`` = ``(x_min, x_max, y_min, y_max)`` of the maps. Written atomically to ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_cols = max(len(r) for r in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(4.2 * n_cols, 4.2 * len(rows)), squeeze=False)
    for r, (maps, names) in enumerate(zip(rows, titles)):
        hi = max(float(np.max(m)) for m in maps) or 1.0
        lo = min(float(np.min(m)) for m in maps)
        for c, (ax, bev, name) in enumerate(zip(axes[r], maps, names)):
            ax.imshow(bev, origin="lower", extent=tuple(extent), vmin=lo, vmax=hi, cmap="magma")
            if keypoints is not None and len(keypoints):
                kp = np.asarray(keypoints).reshape(-1, 2)
                ax.scatter(kp[:, 0], kp[:, 1], s=2, c="cyan", linewidths=0)
                ax.set_xlim(extent[0], extent[1])
                ax.set_ylim(extent[2], extent[3])
            ax.set_title(name, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0 and r < len(row_labels):
                ax.set_ylabel(row_labels[r])
        for ax in axes[r][len(maps):]:
            ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, out_png)


def plot_image_labels(image: np.ndarray, label_sets: Sequence[np.ndarray], titles: Sequence[str],
                      num_labels: Sequence[int], out_png, ignore_index: int = 255) -> Path:
    """A camera image ``[H, W, 3]`` (uint8 or 0..1) beside label images ``[H, W]`` (ids ``0..num_labels[i]-1``,
    ``ignore_index`` grey), each in its own palette (a prediction's cluster ids are not classes). ``titles``: one
    for the image and one per label image. Written atomically to ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [np.asarray(image)]
    for labels, n in zip(label_sets, num_labels):
        labels = np.asarray(labels)
        panels.append(label_palette(n)[np.where((labels == ignore_index) | (labels >= n), n, labels)])
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), squeeze=False)
    for ax, panel, title in zip(axes[0], panels, titles):
        ax.imshow(panel)
        ax.set_title(textwrap.fill(title, 50), fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    return save_figure(fig, out_png)
