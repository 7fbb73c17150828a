"""Distillation pieces: k-means and super-point helpers, losses, frozen teachers, fusion and its loader."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pc_kd.datasets.transforms import LoadFusedFeatures
from pc_kd.evaluation import hungarian_miou
from pc_kd.heads import assign_clusters, kmeans, segment_pool, vote
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


def test_segment_pool_vote_and_assign():
    feats = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [5.0, 5.0]])
    seg = torch.tensor([7, 7, 2, -1])
    pooled, index = segment_pool(feats, seg)
    assert index.tolist() == [1, 1, 0, -1] and pooled.tolist() == [[0.0, 2.0], [2.0, 0.0]]
    assert vote(torch.tensor([0, 1, 1, 1, 0]), torch.tensor([3, 3, 3, -1, 5])).tolist() == [1, 1, 1, 1, 0]
    centroids = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert assign_clusters(torch.tensor([[1.0, 0.1], [0.1, 1.0], [0.0, 1.0]]), centroids,
                           torch.tensor([4, 4, -1])).tolist() == [0, 0, 1]


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
