"""Distillation pieces: k-means and super-point helpers, losses, frozen teachers, fusion and its loader."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pc_kd.datasets.transforms import LoadFusedFeatures
from pc_kd.evaluation import hungarian_miou
from pc_kd.heads import assign_clusters, kmeans, segment_fill, segment_pool, vote
from pc_kd.models.backbones import ModuleTeacher, TinySegNet
from pc_kd.models.losses import CMDLoss, CosineLoss, L1FeatureLoss, SegmentInfoNCELoss
from pc_kd.projection import MissingFrameError, backproject_features, fuse_scene


def test_cosine_kmeans_recovers_separated_directions():
    g = torch.Generator().manual_seed(0)
    directions = torch.linalg.qr(torch.randn(8, 8, generator=g))[0][:4]  # 4 orthonormal directions
    truth = torch.arange(4).repeat_interleave(50)
    x = directions[truth] * (1 + 2 * torch.rand(200, 1, generator=g)) + 0.1 * torch.randn(200, 8, generator=g)
    centroids, assign = kmeans(x, 4, seed=1)
    assert hungarian_miou(assign, truth, 4)["miou"] == 1.0
    again = kmeans(x, 4, seed=1)[1]
    assert torch.equal(assign, again)  # deterministic
    with pytest.raises(ValueError, match="k = 5 clusters asked for only 4 items"):
        kmeans(x[:4], 5)


def test_kmeans_restarts_keep_the_best_objective():
    g = torch.Generator().manual_seed(3)
    x = torch.cat([torch.randn(40, 6, generator=g) + 4 * torch.randn(1, 6, generator=g) for _ in range(7)])

    def fit(centroids, assign):
        xn = F.normalize(x, dim=1)
        return float((xn * centroids[assign]).sum())

    single = [fit(*kmeans(x, 7, seed=s)) for s in range(6)]
    best = [fit(*kmeans(x, 7, seed=s, restarts=8)) for s in range(6)]
    assert all(b >= a - 1e-4 for a, b in zip(single, best))  # the first restart is the single run
    assert any(b > a + 1e-3 for a, b in zip(single, best)) and max(best) - min(best) < max(single) - min(single)


def test_segment_pool_vote_and_assign():
    feats = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    seg = torch.tensor([7, 7, 2, -1])
    pooled, index = segment_pool(feats, seg)
    assert index.tolist() == [1, 1, 0, -1] and pooled.tolist() == [[0.0, 2.0], [2.0, 0.0]]
    assert vote(torch.tensor([0, 1, 1, 1, 0]), torch.tensor([3, 3, 3, -1, 5])).tolist() == [1, 1, 1, 1, 0]
    centroids = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert assign_clusters(torch.tensor([[1.0, 0.1], [0.1, 1.0], [0.0, 1.0]]), centroids,
                           torch.tensor([4, 4, -1])).tolist() == [0, 0, 1]


def test_segment_fill_spreads_the_mean_of_the_seen_points_over_their_segment():
    values = torch.tensor([[1.0, 0.0], [3.0, 2.0], [9.0, 9.0], [0.0, 4.0], [7.0, 7.0], [5.0, 5.0]])
    seen = torch.tensor([True, True, False, True, False, False])
    seg = torch.tensor([4, 4, 4, 0, 2, -1])
    filled, mask = segment_fill(values, seen, seg)
    # segment 4: mean of its two seen points, also given to its unseen third point; segment 2: nothing seen;
    # segment -1 (no super-point): a segment of its own, here unseen
    assert filled.tolist() == [[2.0, 1.0], [2.0, 1.0], [2.0, 1.0], [0.0, 4.0], [0.0, 0.0], [0.0, 0.0]]
    assert mask.tolist() == [True, True, True, True, False, False]


def test_losses_against_their_formulas():
    g = torch.Generator().manual_seed(2)
    pred, target = torch.randn(30, 6, generator=g, requires_grad=True), torch.randn(30, 6, generator=g)
    mask = torch.arange(30) % 3 != 0
    cmd = ((F.normalize(pred[mask], dim=1) - F.normalize(target[mask], dim=1)) ** 2).sum(1).mean()
    torch.testing.assert_close(CMDLoss()(pred, target, mask), cmd)
    torch.testing.assert_close(CosineLoss()(pred, target), (1 - F.cosine_similarity(pred, target)).mean())
    torch.testing.assert_close(L1FeatureLoss(loss_weight=2.0)(pred, target), 2 * (pred - target).abs().mean())
    empty = CMDLoss()(pred, target, torch.zeros(30, dtype=torch.bool))
    assert empty.item() == 0 and empty.requires_grad
    seg = torch.arange(30) // 10
    p = torch.stack([pred[seg == s].mean(0) for s in range(3)])
    t = torch.stack([target[seg == s].mean(0) for s in range(3)])
    logits = F.normalize(p, dim=1) @ F.normalize(t, dim=1).T / 0.07
    torch.testing.assert_close(SegmentInfoNCELoss()(pred, target, seg), F.cross_entropy(logits, torch.arange(3)))
    with pytest.raises(ValueError, match="differ"):
        CMDLoss()(pred, target[:, :5])


def test_weighted_losses_are_the_weighted_mean_of_each_points_loss():
    """``weight [N]``: sum(w_i l_i) / sum(w_i) over the masked points, l_i each point's own loss (float64 by hand);
    weights all equal give the plain mean; a weight of another length is refused."""
    g = torch.Generator().manual_seed(3)
    pred, target = (torch.randn(31, 5, generator=g, dtype=torch.float64) for _ in range(2))
    mask, weight = torch.arange(31) % 4 != 0, torch.rand(31, generator=g, dtype=torch.float64) * 3
    per_point = {CMDLoss: ((F.normalize(pred, dim=1) - F.normalize(target, dim=1)) ** 2).sum(1),
                 CosineLoss: 1 - F.cosine_similarity(pred, target), L1FeatureLoss: (pred - target).abs().mean(1)}
    for loss, values in per_point.items():
        expected = (weight[mask] * values[mask]).sum() / weight[mask].sum()
        torch.testing.assert_close(loss(loss_weight=0.5)(pred, target, mask, weight=weight), 0.5 * expected)
        torch.testing.assert_close(loss()(pred, target, mask, weight=torch.full((31,), 7.0, dtype=torch.float64)),
                                   loss()(pred, target, mask))
    with pytest.raises(ValueError, match="weight"):
        L1FeatureLoss()(pred, target, mask, weight=weight[:30])


def test_class_balance_weighs_each_point_by_the_rarity_of_its_targets_teacher_class():
    """``class_balance``: the teacher's classifier names each seen target's class; ``w_c = clip((n_max / n_c) ** p,
    1, max)``, 0 on unseen points; the distillation loss is the L1 of each point weighted so (by hand)."""
    from mmengine.registry import init_default_scope

    from pc_kd.registry import MODELS

    init_default_scope("pc_kd")

    @MODELS.register_module(force=True)
    class _AxisClassifier(nn.Module):  # class k: the target's largest channel is k
        def classify(self, feats):
            return feats

    cfg = dict(type="PointFeatureDistiller", data_preprocessor=dict(type="PointDataPreprocessor", voxel_size=[0.2] * 3),
               student=dict(type="SpconvUNet", in_channels=3, channels=(4, 8)), recorders=dict(backbone=""),
               connectors=dict(proj=dict(type="PointProjection", in_channels=4, out_channels=3)),
               distill_losses=dict(loss_l1=dict(type="L1FeatureLoss")),
               loss_mapping=dict(loss_l1=dict(pred="backbone", connector="proj")), feature=("backbone", "proj"),
               class_balance=dict(classifier=dict(type="_AxisClassifier"), power=0.5, max_weight=2.5))
    model = MODELS.build(cfg)
    classes = torch.tensor([0] * 90 + [1] * 10 + [2] * 4 + [1] * 3)  # the last 3: unseen
    target = F.one_hot(classes, 3).double() + 0.01 * torch.randn(107, 3, dtype=torch.float64)
    mask = torch.arange(107) < 104
    weight = model.class_balance_weights(target, mask)
    # n = 90, 10, 4: (90 / 10) ** 0.5 = 3 -> 2.5 (clipped); (90 / 4) ** 0.5 = 4.74 -> 2.5; class 0: 1
    assert weight.tolist() == [1.0] * 90 + [2.5] * 14 + [0.0] * 3
    model.class_balance["max_weight"] = 10.0
    torch.testing.assert_close(model.class_balance_weights(target, mask)[[0, 95, 101]],
                               torch.tensor([1.0, 3.0, 22.5 ** 0.5], dtype=torch.float64))
    model._targets = lambda inputs, samples: (target.float(), mask)  # the student's records below, by hand
    records = dict(backbone=torch.randn(107, 4))
    loss = model.distill_loss(records, dict(voxel_feats=torch.zeros(1)), None)["loss_l1"]
    pred = model.connectors["proj"](records["backbone"])
    expected = L1FeatureLoss()(pred, target.float(), mask, weight=model.class_balance_weights(target.float(), mask))
    torch.testing.assert_close(loss, expected)
    assert not torch.allclose(loss, L1FeatureLoss()(pred, target.float(), mask))
    with pytest.raises(ValueError, match="class_balance"):
        MODELS.build(dict(cfg, loss_mapping=dict(loss_l1=dict(pred="backbone", connector="proj",
                                                               pool_targets="superpoints"))))


def test_teacher_is_frozen_resizes_and_checks_rank(tmp_path):
    teacher = ModuleTeacher(TinySegNet(num_classes=3, feat_channels=8), stride=4)
    teacher.train()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert teacher(torch.rand(2, 3, 30, 42)).shape == (2, 8, 7, 10)

    class Flat(nn.Module):
        def forward(self, x):
            return x.mean((2, 3))

    with pytest.raises(ValueError, match="rank 2"):
        ModuleTeacher(Flat())(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        teacher(torch.rand(1, 4, 8, 8))
    bad = tmp_path / "other.pth"
    torch.save({"state_dict": TinySegNet(num_classes=5).state_dict()}, bad)
    with pytest.raises(ValueError, match="does not match"):
        ModuleTeacher(dict(type="TinySegNet", num_classes=3), pretrained=str(bad))


def _frames(info, n=None):
    return info["images"][:n] if n else info["images"]


def test_fuse_scene_equals_one_backprojection_over_all_frames(synthetic_indoor_root):
    from pc_kd.datasets import ScanNetDataset
    from pc_kd.datasets.synthetic import INDOOR_CLASSES
    from pc_kd.projection import load_frames

    ds = ScanNetDataset(ann_file="synthetic_indoor_infos_train.pkl", data_root=str(synthetic_indoor_root),
                        metainfo=dict(classes=INDOOR_CLASSES, seg_raw_ids=tuple(range(10))),
                        pipeline=[dict(type="LoadPointsFromFile", load_dim=6)])
    info, points = ds.get_data_info(0), torch.from_numpy(ds.prepare_data(0)["points"][:, :3].astype(np.float64))
    teacher = ModuleTeacher(TinySegNet(num_classes=3, feat_channels=6), stride=4)
    feats, count = fuse_scene(teacher, points, _frames(info), "s", batch_frames=1, depth_tol=0.1, device="cpu")
    images, lidar2img, depth = load_frames(_frames(info), "s")
    ref, ref_count = backproject_features(points, teacher(images), lidar2img, tuple(images.shape[2:]),
                                          visibility="depth", depth_maps=depth, depth_tol=0.1, border=2)
    assert count.tolist() == ref_count.tolist() and 0.2 < (count > 0).float().mean() < 1.0
    torch.testing.assert_close(feats.float(), ref.half().float(), atol=1e-3, rtol=1e-3)
    frames = [dict(f) for f in _frames(info)]
    frames[1]["img_path"] = "/nowhere/00001.jpg"
    with pytest.raises(MissingFrameError, match="scene s: image /nowhere/00001.jpg not found"):
        fuse_scene(teacher, points, frames, "s", device="cpu")
    frames = [dict(f) for f in _frames(info)]
    frames[0]["cam2world"] = np.full((4, 4), np.inf).tolist()
    with pytest.raises(MissingFrameError, match="no valid cam2world pose"):
        fuse_scene(teacher, points, frames, "s", device="cpu")


def test_fused_feature_file_must_match_the_points(tmp_path):
    np.savez(tmp_path / "scene.npz", feats=np.zeros((4, 3), np.float16), count=np.zeros(4, np.int32))
    with pytest.raises(ValueError, match=r"scene.npz: 4 feature rows for 5 points"):
        LoadFusedFeatures(str(tmp_path))({"lidar_path": "/data/points/scene.bin", "num_points": 5})
    with pytest.raises(FileNotFoundError, match="run tools/fuse_features.py"):
        LoadFusedFeatures(str(tmp_path))({"lidar_path": "/data/points/other.bin", "num_points": 5})
    np.savez(tmp_path / "ints.npz", feats=np.zeros((4, 3), np.int32), count=np.zeros(4, np.int32))
    with pytest.raises(ValueError, match=r"ints.npz: 'feats' must be a floating-point \[N, C\] array, got int32"):
        LoadFusedFeatures(str(tmp_path))({"lidar_path": "/data/points/ints.bin", "num_points": 4})
    np.savez(tmp_path / "half.npz", feats=np.ones((4, 3), np.float16), count=np.ones(4, np.int32))
    out = LoadFusedFeatures(str(tmp_path))({"lidar_path": "/data/points/half.bin", "num_points": 4})
    assert out["teacher_feats"].dtype == np.float16  # kept as stored: no float32 copy per scene


def test_distiller_pool_targets_distils_the_super_point_mean_of_the_seen_targets():
    from mmengine.registry import init_default_scope
    from mmengine.structures import BaseDataElement

    from pc_kd.registry import MODELS
    from pc_kd.structures import Point3DDataSample

    init_default_scope("pc_kd")
    g = torch.Generator().manual_seed(0)
    samples, clouds = [], []
    for n in (50, 37):
        clouds.append(torch.cat([torch.rand(n, 3, generator=g) * 2, torch.rand(n, 3, generator=g)], 1))
        sample = Point3DDataSample(metainfo={"lidar_path": f"scene{n}.bin"})
        sample.teacher_feats = BaseDataElement(feats=torch.randn(n, 8, generator=g),
                                               count=torch.randint(0, 2, (n,), generator=g))
        sample.superpoints = torch.randint(0, 6, (n,), generator=g)
        samples.append(sample)
    cfg = dict(type="PointFeatureDistiller", data_preprocessor=dict(type="PointDataPreprocessor", voxel_size=[0.2] * 3),
               student=dict(type="SpconvUNet", in_channels=6, channels=(4, 8)), recorders=dict(backbone=""),
               connectors=dict(proj=dict(type="PointProjection", in_channels=4, out_channels=8)),
               distill_losses=dict(loss_cmd=dict(type="CMDLoss")),
               loss_mapping=dict(loss_cmd=dict(pred="backbone", connector="proj", pool_targets="superpoints")),
               feature=("backbone", "proj"))
    model = MODELS.build(cfg)
    data = model.data_preprocessor(dict(inputs=dict(points=clouds), data_samples=samples), True)
    loss = model.loss(data["inputs"], data["data_samples"])["loss_cmd"]
    pred = torch.cat(model.point_features_list(data["inputs"]))
    targets, masks = [], []
    for s in samples:  # per cloud, by hand: every point takes the mean target of its super-point's seen points
        seen = s.teacher_feats.count > 0
        for sp in s.superpoints.tolist():
            members = (s.superpoints == sp) & seen
            masks.append(bool(members.any()))
            targets.append(s.teacher_feats.feats[members].mean(0) if members.any() else torch.zeros(8))
    torch.testing.assert_close(loss, CMDLoss()(pred, torch.stack(targets), torch.tensor(masks)))


def test_cutaway_keeps_the_contents_of_a_room_and_drops_its_ceiling_and_near_walls():
    from pc_kd.visualization import cutaway_mask

    rng = np.random.default_rng(0)
    floor = np.c_[rng.uniform(0, 5, (500, 2)), np.zeros(500)]
    ceiling = np.c_[rng.uniform(0, 5, (500, 2)), np.full(500, 3.0)]
    near_wall = np.c_[np.zeros(300), rng.uniform(0, 5, 300), rng.uniform(0, 3, 300)]  # x = x_min: facing the camera
    far_wall = np.c_[np.full(300, 5.0), rng.uniform(0, 5, 300), rng.uniform(0, 3, 300)]
    table = np.c_[rng.uniform(2, 3, (200, 2)), rng.uniform(0.7, 0.8, 200)]
    points = np.vstack([floor, ceiling, near_wall, far_wall, table])
    keep = cutaway_mask(points, "iso")
    parts = np.split(keep, np.cumsum([500, 500, 300, 300]))
    assert parts[4].all() and not parts[1].any() and not parts[2].any()  # table kept; ceiling, near wall gone
    assert parts[3].mean() > 0.75 and parts[0].mean() > 0.85  # far wall (below the ceiling band) and floor stay
    top = cutaway_mask(points, "top")
    assert top[np.cumsum([500, 500])[1]:].sum() > 550  # from above only the ceiling goes
    assert cutaway_mask(np.zeros((0, 3))).shape == (0,)
