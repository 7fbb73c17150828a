"""Voxelization against a dictionary-based loop; segmentation metrics against scikit-learn."""
import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import jaccard_score

from pc_kd.evaluation import SegMetric, confusion_matrix, scores_from_confusion
from pc_kd.voxel import voxel_mean, voxelize


@pytest.mark.parametrize("sizes", [(1,), (7, 1, 33)])
def test_voxelize_matches_a_dictionary_loop(sizes):
    rng = np.random.default_rng(len(sizes))
    clouds = [rng.normal(b, 1.3, (n, 3)) for b, n in enumerate(sizes)]
    coord = torch.from_numpy(np.concatenate(clouds))
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    vox = voxelize(coord, batch, (0.5, 0.7, 0.3))
    keys = {}
    for b, cloud in enumerate(clouds):
        lo = cloud.min(0)
        for p in cloud:
            keys.setdefault((b, *np.floor((p - lo) / (0.5, 0.7, 0.3)).astype(int)), len(keys))
    assert len(vox.coords) == len(keys)
    got = [tuple(vox.coords[v].tolist()) for v in vox.point2voxel.tolist()]  # (b, z, y, x)
    ref = []
    for b, cloud in enumerate(clouds):
        lo = cloud.min(0)
        ref += [(b, *np.floor((p - lo) / (0.5, 0.7, 0.3)).astype(int)[::-1]) for p in cloud]
    assert got == ref
    assert all(int(vox.coords[:, i + 1].max()) < vox.spatial_shape[i] for i in range(3))
    feats = torch.rand(len(coord), 2, dtype=torch.float64)
    mean = voxel_mean(feats, vox.point2voxel, len(vox.coords))
    for v in range(len(vox.coords)):
        torch.testing.assert_close(mean[v], feats[vox.point2voxel == v].mean(0))


def test_voxelize_rejects_empty_and_bad_size():
    with pytest.raises(ValueError, match="empty"):
        voxelize(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 0.1)
    with pytest.raises(ValueError, match="positive"):
        voxelize(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), 0.0)


def test_confusion_and_iou_match_sklearn():
    rng = np.random.default_rng(0)
    gt = rng.integers(0, 6, 5000)
    gt[rng.random(5000) < 0.1] = 255
    pred = np.where(rng.random(5000) < 0.6, gt, rng.integers(0, 6, 5000)) % 6
    conf = confusion_matrix(pred, gt, 6)
    keep = gt != 255
    np.testing.assert_array_equal(conf, sk_confusion(gt[keep], pred[keep], labels=range(6)))
    scores = scores_from_confusion(conf)
    np.testing.assert_allclose(scores["iou"], jaccard_score(gt[keep], pred[keep], labels=range(6), average=None))
    assert scores["oacc"] == pytest.approx((gt[keep] == pred[keep]).mean())


def test_seg_metric_over_samples_skips_absent_classes():
    metric = SegMetric()
    metric.dataset_meta = dict(classes=("a", "b", "c"))
    samples = [dict(pred_pts_seg=dict(pts_semantic_mask=torch.tensor([0, 1, 1])),
                    gt_pts_seg=dict(pts_semantic_mask=torch.tensor([0, 1, 255]))),
               dict(pred_pts_seg=dict(pts_semantic_mask=torch.tensor([0, 0])),
                    gt_pts_seg=dict(pts_semantic_mask=torch.tensor([0, 1])))]
    metric.process({}, samples)
    out = metric.compute_metrics(metric.results)
    # class a: tp 2, fp 1 -> 2/3; class b: tp 1, fn 1 -> 1/2; class c absent in gt and prediction
    assert out["iou_a"] == pytest.approx(2 / 3) and out["iou_b"] == pytest.approx(0.5)
    assert np.isnan(out["iou_c"]) and out["miou"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert out["oacc"] == pytest.approx(3 / 4)
