"""Detection pictures: box edges projected into an image against a hand computation, and the camera picture
with ground truth and predictions written as a non-blank PNG, the BEV picture's colours, range and title."""
from pathlib import Path

import numpy as np
import torch

from pc_kd.structures import Boxes3D
from pc_kd.visualization import box_edges_in_image, draw_camera_detections
from pc_kd.visualization.render import BOX_EDGES  # 12 edges and a cross on the front face


def _camera(f=100.0, cx=160.0, cy=120.0):
    """A camera at the LiDAR origin looking along +x (image u to the right = -y, v down = -z)."""
    K = np.array([[f, 0, cx, 0], [0, f, cy, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    lidar2cam = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]])
    return K @ lidar2cam


def test_box_edges_project_as_the_pinhole_formula_and_drop_edges_behind_the_camera():
    box = Boxes3D(torch.tensor([[10.0, 2.0, 0.0, 4.0, 2.0, 1.5, 0.0]], dtype=torch.float64))
    corners = box.corners().numpy()
    segments = box_edges_in_image(corners, _camera())
    assert segments.shape == (14, 3, 2) and len(BOX_EDGES) == 14 and (segments[:, 2, 0] == 0).all()
    # every end point is some corner's (u, v) = (cx - f y / x, cy - f z / x)
    x, y, z = corners[0].T
    expected = np.stack([160 - 100 * y / x, 120 - 100 * z / x], 1)
    for end in segments[:, :2].reshape(-1, 2):
        assert np.abs(expected - end).sum(1).min() < 1e-9
    # a box whose back half lies behind the image plane keeps only the edges with both ends in front
    straddling = Boxes3D(torch.tensor([[0.5, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]], dtype=torch.float64)).corners().numpy()
    in_front = straddling[0, :, 0] > 0.1
    kept = box_edges_in_image(straddling, _camera())
    assert in_front.sum() == 4 and len(kept) == sum(bool(in_front[a] and in_front[b]) for a, b in BOX_EDGES) > 0
    assert box_edges_in_image(np.zeros((0, 8, 3)), _camera()).shape == (0, 3, 2)


def test_camera_picture_shows_ground_truth_and_predictions(tmp_path):
    gt = Boxes3D(torch.tensor([[10.0, 2.0, 0.0, 4.0, 2.0, 1.5, 0.0]], dtype=torch.float64))
    pred = Boxes3D(torch.tensor([[10.5, 1.5, 0.0, 4.0, 2.0, 1.5, 0.1], [12.0, -3, 0, 1, 1, 1, 0]], dtype=torch.float64))
    images = [np.full((240, 320, 3), 255, np.uint8)] * 2
    png = draw_camera_detections(images, np.stack([_camera(), _camera()]), pred, [0, 1], [0.9, 0.1],
                                 ["car", "pedestrian"], tmp_path / "cams.png", cam_names=["FRONT", "FRONT_2"],
                                 gt_boxes=gt, gt_labels=[0])
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    coloured = (np.abs(pixels - pixels.mean(2, keepdims=True)).sum(2) > 60).sum()  # box lines are saturated
    assert coloured > 200


def test_bev_picture_colours_ground_truth_by_class_covers_the_range_and_states_the_threshold(tmp_path, monkeypatch):
    import pc_kd.visualization.det as det
    from pc_kd.visualization import label_palette

    figures = []
    monkeypatch.setattr(det, "save_figure", lambda fig, out: figures.append(fig) or Path(out))
    gt = Boxes3D(torch.tensor([[45.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.0]], dtype=torch.float64))  # beyond +-32 m
    pred = Boxes3D(torch.tensor([[45.5, 0.5, 0.0, 4.0, 2.0, 1.5, 0.1], [12.0, -3, 0, 1, 1, 1, 0]], dtype=torch.float64))
    points = np.random.default_rng(0).uniform(-50, 50, (500, 4))
    det.plot_bev_detections(points, gt, [1], pred, [1, 0], [0.9, 0.1], ["car", "truck"], tmp_path / "bev.png",
                            bev_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0], title="sample: nuScenes")
    ax = figures[0].axes[0]
    assert ax.get_xlim() == (-51.2, 51.2) and ax.get_ylim() == (-51.2, 51.2)
    assert "score >= 0.3: 1 of 2 drawn" in ax.get_title()
    truck = tuple(label_palette(2)[1])
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert dashed and all(tuple(line.get_color()) == truck for line in dashed)  # GT in its class colour
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"ground truth", "prediction", "truck"}


def test_top_view_draws_the_background_class_pale_and_every_other_class_in_its_own_colour(tmp_path, monkeypatch):
    import pc_kd.visualization.bev as bev

    figures = []
    monkeypatch.setattr(bev, "save_figure", lambda fig, out: figures.append(fig) or Path(out))
    points = np.random.default_rng(0).uniform(-20, 20, (30, 3))
    labels = np.arange(30) % 4
    labels[-1] = 255
    bev.plot_bev_labels(points, [labels], ["frame"], ["car", "truck", "pedestrian", "other"], tmp_path / "t.png",
                        background="other")
    colours = figures[0].axes[0].collections[0].get_facecolors()[:, :3]
    palette = bev.label_palette(4)
    assert np.allclose(colours[labels == 3], bev.BACKGROUND_COLOUR)
    for k in range(3):
        assert np.allclose(colours[labels == k], palette[k])
    assert np.allclose(colours[-1], palette[-1])  # ignored: grey
    assert len({tuple(np.round(c, 3)) for c in colours}) == 5
