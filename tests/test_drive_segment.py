"""Drive&Segment's pieces against independent oracles: masked crops (the mask applied AFTER normalisation),
segment images against a per-point loop, pseudo-label images against a per-pixel loop, the sliding-window merge
against one full pass, mini-batch k-means on separable blobs, the synthetic per-pixel classes against the
scene's geometry, the contrastive loss against a loop, and the whole pipeline on a few frames."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from pc_kd.datasets.synthetic.driving import (PIXEL_CLASSES, PIXEL_IGNORE, DrivingScene, cam2ego_matrix,
                                              make_driving_scene, render_camera)
from pc_kd.datasets.synthetic.writer import driving_intrinsic
from pc_kd.evaluation.hungarian import hungarian_miou
from pc_kd.heads.clustering import kmeans, minibatch_kmeans
from pc_kd.models.backbones.image_teachers import TinySegNet
from pc_kd.models.segmentors.image_segments import (ContrastiveCropEncoder, augment_crops, masked_segment_crops,
                                                    nt_xent, pool_over_segment, sliding_window_logits)
from pc_kd.projection.project import project_points
from pc_kd.projection.segment_masks import pseudo_label_images, segment_images
from pc_kd.structures.class_names import NUSCENES_CLASSES
from pc_kd.utils.image import IMAGENET_MEAN, IMAGENET_STD


def test_crops_mask_after_normalisation():
    g = torch.Generator().manual_seed(0)
    image = torch.rand(3, 30, 40, generator=g)
    seg = torch.full((30, 40), -1)
    seg[5:17, 10:22] = 3  # a 12 x 12 square: its crop needs no resizing at size 12
    seg[8, 12] = -1
    crops, ids = masked_segment_crops(image, seg, size=12)
    assert ids.tolist() == [3]
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    expected = (image[:, 5:17, 10:22] - mean) / std
    inside = seg[5:17, 10:22] == 3
    torch.testing.assert_close(crops[0][:, inside], expected[:, inside])
    assert (crops[0][:, ~inside] == 0).all()  # masking before normalisation would leave -mean / std there
    assert not torch.allclose(-mean / std, torch.zeros(3, 1, 1))


def test_crops_are_squares_that_keep_the_segments_shape():
    image = torch.rand(3, 40, 50)
    seg = torch.full((40, 50), -1)
    seg[0:20, 30:34] = 0  # tall and thin, at the top border
    seg[30:32, 0:3] = 1  # 6 pixels
    seg[35, 45] = 2  # one pixel: skipped (min_pixels)
    crops, ids = masked_segment_crops(image, seg, size=20, min_pixels=4)
    assert ids.tolist() == [0, 1]
    nonzero_cols = (crops[0].abs().sum((0, 1)) > 0).nonzero().view(-1)
    assert len(nonzero_cols) == 4 and (crops[0].abs().sum((0, 2)) > 0).all()  # 20 rows tall, 4 columns wide
    with pytest.raises(ValueError, match=r"image \[3, H, W\]"):
        masked_segment_crops(image, seg[:10])
    empty, none = masked_segment_crops(image, torch.full((40, 50), -1))
    assert empty.shape == (0, 3, 32, 32) and len(none) == 0


def test_features_are_pooled_over_the_segment_only():
    crops = torch.zeros(2, 3, 8, 8)
    crops[0, :, :4, :4] = 1.0  # the top-left quarter
    crops[1] = 0.5
    feats = torch.arange(2 * 5 * 4 * 4, dtype=torch.float32).view(2, 5, 4, 4)  # stride 2: 4 x 4 cells
    pooled = pool_over_segment(feats, crops)
    torch.testing.assert_close(pooled[0], feats[0, :, :2, :2].mean((1, 2)))
    torch.testing.assert_close(pooled[1], feats[1].mean((1, 2)))


def test_detailed_objects_stay_in_their_boxes():
    scene = make_driving_scene(5, num_objects=30, extent=25.0, detailed=True)
    plain = make_driving_scene(5, num_objects=30, extent=25.0)
    np.testing.assert_array_equal(scene.boxes_ego, plain.boxes_ego)  # the same placement
    parts, owner, _ = scene.parts()
    assert len(parts) > len(plain.parts()[0])
    for part, k in zip(parts, owner):
        x, y, z, l, w, h, yaw = scene.boxes_ego[k]
        c, s = np.cos(-yaw), np.sin(-yaw)
        dx, dy = part[0] - x, part[1] - y
        local = np.array([c * dx - s * dy, s * dx + c * dy, part[2] - z])
        half = np.array([part[3], part[4], part[5]]) / 2
        assert np.all(np.abs(local) + half <= np.array([l, w, h]) / 2 * 1.1 + 1e-9)  # wheels stick out 4 % of w


def test_segment_images_are_the_nearest_point_per_pixel():
    g = torch.Generator().manual_seed(1)
    n, hw = 300, (17, 23)
    points = torch.rand(n, 3, generator=g) * torch.tensor([4.0, 4.0, 6.0]) + torch.tensor([-2.0, -2.0, 1.0])
    segment = torch.randint(-1, 5, (n,), generator=g)
    K = torch.tensor([[8.0, 0, 11.5, 0], [0, 8.0, 8.5, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    lidar2img = torch.stack([K, K @ torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0]))])
    got = segment_images(points, segment, lidar2img, hw, radius=1)
    proj = project_points(points, lidar2img, hw)
    for v in range(2):
        best = {}
        for i in range(n):
            if not proj.valid[v, i]:
                continue
            u, w = int(proj.uv[v, i, 0]), int(proj.uv[v, i, 1])
            for r in range(w - 1, w + 2):
                for c in range(u - 1, u + 2):
                    if 0 <= r < hw[0] and 0 <= c < hw[1]:
                        d = float(proj.depth[v, i])
                        if (r, c) not in best or d <= best[(r, c)][0]:
                            best[(r, c)] = (d, int(segment[i]))
        expected = torch.full(hw, -1)
        for (r, c), (_, s) in best.items():
            expected[r, c] = s
        assert torch.equal(got[v], expected)


def test_pseudo_label_images_against_a_pixel_loop():
    g = torch.Generator().manual_seed(2)
    seg = torch.randint(-1, 7, (2, 9, 11), generator=g)
    cluster = torch.tensor([3, -1, 0, 11, 3, 5, 2])
    got = pseudo_label_images(seg, cluster, 255)
    for idx in np.ndindex(*seg.shape):
        s = int(seg[idx])
        want = 255 if s < 0 or cluster[s] < 0 else int(cluster[s])
        assert int(got[idx]) == want
    with pytest.raises(ValueError, match="cluster_of_segment has only"):
        pseudo_label_images(seg, cluster[:3])


class _Pointwise(nn.Module):
    """Logits that depend on each pixel alone: any tiling gives the full pass's logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 1)

    def forward(self, x):
        return self.conv(x) ** 2


def test_sliding_window_merge_equals_one_full_pass():
    torch.manual_seed(0)
    images = torch.randn(2, 3, 37, 53)
    net = TinySegNet(4, feat_channels=8, width=8).eval()
    with torch.no_grad():
        full = net(images)
    torch.testing.assert_close(sliding_window_logits(net, images, (37, 53), (10, 10)), full)
    torch.testing.assert_close(sliding_window_logits(net, images, (64, 64), (32, 32)), full)
    pointwise = _Pointwise()
    with torch.no_grad():
        tiled = sliding_window_logits(pointwise, images, (16, 20), (7, 9))  # overlapping, last windows at the border
        torch.testing.assert_close(tiled, pointwise(images))
    ones = sliding_window_logits(lambda x: torch.ones(x.shape[0], 1, *x.shape[2:]), images, (16, 20), (7, 9))
    torch.testing.assert_close(ones, torch.ones(2, 1, 37, 53))  # overlaps averaged, not summed


def test_minibatch_kmeans_finds_separable_blobs():
    g = torch.Generator().manual_seed(3)
    centres = torch.randn(6, 16, generator=g) * 5
    truth = torch.randint(0, 6, (5000,), generator=g)
    x = centres[truth] + 0.3 * torch.randn(5000, 16, generator=g)
    cents, assign = minibatch_kmeans(x, 6, batch_size=256, iters=100, seed=0, cosine=False)
    score = hungarian_miou(assign.numpy(), truth.numpy(), 6)
    assert score["miou"] == pytest.approx(1.0)
    full_c, full_a = kmeans(x, 6, cosine=False)
    sse = ((x - cents[assign]) ** 2).sum()
    assert sse <= 1.02 * ((x - full_c[full_a]) ** 2).sum()
    one_c, one = minibatch_kmeans(x, 9, batch_size=256, iters=30, seed=1, cosine=False)
    best_c, best = minibatch_kmeans(x, 9, batch_size=256, iters=30, seed=1, cosine=False, restarts=3)
    assert ((x - best_c[best]) ** 2).sum() <= ((x - one_c[one]) ** 2).sum() + 1e-3  # the first run is one of the 3
    with pytest.raises(ValueError, match="k = 7 clusters asked for only 5"):
        minibatch_kmeans(x[:5], 7)


def test_pixel_classes_follow_the_scene():
    car = NUSCENES_CLASSES.index("car")
    scene = DrivingScene(np.array([[12.0, 0.0, 0.85, 4.6, 1.95, 1.7, 0.0]]), np.array([car]), np.zeros((1, 2)),
                         np.array([-1]), np.array([[200.0, 40.0, 40.0]]), np.eye(4))
    hw = (60, 100)
    rgb, classes = render_camera(scene, cam2ego_matrix(0.0), driving_intrinsic(hw), hw, with_classes=True)
    assert np.array_equal(rgb, render_camera(scene, cam2ego_matrix(0.0), driving_intrinsic(hw), hw))
    car_px = classes == PIXEL_CLASSES.index("car")
    assert car_px.sum() > 50
    # the car's pixels are its paint (red dominant), the sky is above the horizon and ignored, the rest ground
    assert (rgb[car_px][:, 0] > rgb[car_px][:, 2]).all()
    assert (classes[: hw[0] // 2 - 3] == PIXEL_IGNORE).sum() > 0 and (classes[-5:] == 0).all()
    assert set(np.unique(classes).tolist()) == {0, PIXEL_CLASSES.index("car"), PIXEL_IGNORE}
    rear = render_camera(scene, cam2ego_matrix(180.0), driving_intrinsic(hw), hw, with_classes=True)[1]
    assert not (rear == PIXEL_CLASSES.index("car")).any()  # the car is ahead


def test_nt_xent_against_a_loop():
    g = torch.Generator().manual_seed(4)
    z_a, z_b = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    z = torch.nn.functional.normalize(torch.cat([z_a, z_b]), dim=1)
    total = 0.0
    for i in range(10):
        partner = (i + 5) % 10
        others = [j for j in range(10) if j != i]
        logits = torch.stack([z[i] @ z[j] / 0.2 for j in others])
        total += -(logits[others.index(partner)] - torch.logsumexp(logits, 0))
    torch.testing.assert_close(nt_xent(z_a, z_b, 0.2), total / 10)
    assert nt_xent(z_a, z_a * 3, 0.05) < nt_xent(z_a, z_b, 0.05)  # identical views pick their partners


def test_augmented_crops_keep_an_empty_crop_empty_and_are_seeded():
    crops = torch.zeros(3, 3, 16, 16)
    crops[1, :, 4:12, 6:10] = torch.randn(3, 8, 4)
    one = augment_crops(crops, torch.Generator().manual_seed(0))
    again = augment_crops(crops, torch.Generator().manual_seed(0))
    assert one.shape == crops.shape and torch.equal(one, again)
    assert (one[0] == 0).all() and (one[2] == 0).all()  # no segment: nothing added (brightness only inside)
    assert not torch.equal(one[1], crops[1])
    model = ContrastiveCropEncoder(TinySegNet(1, feat_channels=8, width=8), 8)
    loss = model.loss(torch.randn(4, 3, 16, 16), torch.Generator().manual_seed(1))
    loss.backward()
    assert torch.isfinite(loss) and model.encoder.embed.weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_the_pipeline_runs_on_a_few_frames(tmp_path):
    from pc_kd.experiments import drive_segment as ds

    s = ds.Settings(image_hw=(56, 100), train_frames=4, test_frames=2, backbone_frames=2, student_iters=3,
                    backbone_iters=3, batch_size=2, window=(56, 56), window_stride=(28, 22), clusters=8)
    state = ds.train_backbone(ds.make_frames(2, 2, s), s, tmp_path / "backbone.pth", log=lambda m: None)
    assert (tmp_path / "backbone.pth").exists()
    rows = ds.run(s, 0, state, ds.make_frames(0, 4, s), ds.make_frames(1, 2, s), log=lambda m: None)
    assert list(rows) == ["a", "b", "c", "d", "e", "f"]
    for row in rows.values():
        assert 0 <= row["miou"] <= row["miou_unmatched_ignored"] + 1e-9 <= 100 + 1e-9
    assert rows["b"]["pixels"] < rows["a"]["pixels"]  # the pseudo-labels cover part of the pixels only


def test_sparse_point_classes_by_hand():
    from pc_kd.experiments.drive_segment_real import REAL_CLASSES, sparse_point_classes
    from pc_kd.structures.class_names import NUSCENES_BOX_POINT_CLASSES as BOX

    points = np.array([[5.0, 0, -1.8], [5.0, 0, -1.8], [5.0, 0, -1.0], [40.0, 0, -1.8], [3.0, 1, -1.7],
                       [3.0, 1, -1.7]])
    labels = np.array([BOX.index("car"), BOX.index("other"), BOX.index("other"), BOX.index("other"), 255,
                       BOX.index("traffic_cone")])
    got = sparse_point_classes(points, labels)
    assert got.tolist() == [REAL_CLASSES.index("car"), REAL_CLASSES.index("road"), -1, -1, -1,
                            REAL_CLASSES.index("traffic_cone")]


@pytest.mark.realdata
def test_real_frames_carry_sparse_labels_where_the_lidar_sees(real_data, tmp_path):
    """Two real scene-0916 key frames: six resized cameras, labelled pixels only where a LiDAR point falls, road
    below the horizon, cars where the annotated cars' points project."""
    from pc_kd.datasets.converters.nuscenes import create_nuscenes_split_infos
    from pc_kd.datasets.converters.nuscenes_points import create_nuscenes_point_infos
    from pc_kd.experiments.drive_segment_real import REAL_CLASSES, real_frames

    root = real_data / "nuscenes_2scenes"
    det = create_nuscenes_split_infos(root, tmp_path / "infos", "v1.0-trainval", split_scenes={"val": ["scene-0916"]},
                                      log=lambda m: None)
    info = create_nuscenes_point_infos(det[0], root, tmp_path / "points", log=lambda m: None)
    frames = real_frames(info, (90, 160), limit=2)
    assert len(frames) == 2
    for frame in frames:
        assert frame.images.shape == (6, 3, 90, 160) and frame.classes.shape == (6, 90, 160)
        labelled = frame.classes != PIXEL_IGNORE
        assert 0.02 < labelled.float().mean() < 0.6
        road = frame.classes == REAL_CLASSES.index("road")
        rows = torch.nonzero(road)[:, 1].float()
        assert road.sum() > 500 and (rows > 45).float().mean() > 0.95  # the road lies below the horizon
        assert (frame.classes == REAL_CLASSES.index("car")).any()


def test_frame_cache_reads_back_bit_identical_without_pickle(tmp_path):
    from pc_kd.experiments import drive_segment as ds

    s = ds.Settings(image_hw=(28, 50), num_objects=6)
    frames = ds.make_frames(5, 2, s)
    ds.save_frames(frames, tmp_path / "frames.npz")
    back = ds.load_frames(tmp_path / "frames.npz")
    assert len(back) == 2
    for a, b in zip(frames, back):
        assert torch.equal(a.images, b.images) and torch.equal(a.classes, b.classes)
        assert np.array_equal(a.points, b.points) and a.points.dtype == b.points.dtype
        assert torch.equal(a.lidar2img, b.lidar2img)
    with np.load(tmp_path / "frames.npz", allow_pickle=False) as z:  # plain arrays: no object is pickled
        assert all(z[k].dtype != object for k in z.files)


def test_real_frames_name_the_missing_or_malformed_file(tmp_path):
    import pickle

    from pc_kd.experiments.drive_segment_real import real_frames

    points = np.zeros((10, 5), np.float32)
    points.tofile(tmp_path / "sweep.bin")
    np.zeros(9, np.int64).tofile(tmp_path / "labels.bin")  # one label short
    entry = dict(lidar_points=dict(lidar_path=str(tmp_path / "sweep.bin")),
                 pts_semantic_mask_path=str(tmp_path / "labels.bin"),
                 images=[dict(img_path=str(tmp_path / "missing.jpg"), cam2img=np.eye(3).tolist(),
                              cam2world=np.eye(4).tolist())])
    info = tmp_path / "points_infos.pkl"
    info.write_bytes(pickle.dumps(dict(data_list=[entry])))
    with pytest.raises(FileNotFoundError, match=r"data_list\[0\]\.images\[0\]\.img_path = .*missing\.jpg"):
        real_frames(info)
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "missing.jpg")
    with pytest.raises(ValueError, match=r"sweep\.bin holds 50 float32 values .*labels\.bin 9 int64"):
        real_frames(info)
    with pytest.raises(FileNotFoundError, match="point info file"):
        real_frames(tmp_path / "absent.pkl")
