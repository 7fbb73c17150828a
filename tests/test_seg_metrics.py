"""Segmentation metrics against scikit-learn."""
import numpy as np
import pytest
import torch
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import jaccard_score

from pc_kd.evaluation import SegMetric, confusion_matrix, scores_from_confusion


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


def test_out_of_range_predictions_raise_instead_of_being_clipped():
    metric = SegMetric()
    metric.dataset_meta = dict(classes=("a", "b", "c"))
    for bad in (3, -1):
        sample = dict(pred_pts_seg=dict(pts_semantic_mask=torch.tensor([0, bad])),
                      gt_pts_seg=dict(pts_semantic_mask=torch.tensor([0, 1])))
        with pytest.raises(ValueError, match=r"1 predictions outside 0..2"):
            metric.process({}, [sample])
    # a prediction on an ignored point is not scored, whatever it is
    assert confusion_matrix(np.array([0, 7]), np.array([0, 255]), 3).sum() == 1
    with pytest.raises(ValueError, match="2 predictions for 3 labels"):
        confusion_matrix(np.array([0, 1]), np.array([0, 1, 2]), 3)


def test_one_rooms_miou_under_the_splits_matching_counts_unmatched_clusters_wrong():
    from pc_kd.experiments.indoor import room_miou

    labels = np.array([0, 0, 1, 1, 255, 2])
    pred = np.array([0, 1, 1, -1, 0, 2])  # -1: a cluster the split's matching gave no class
    # class 0: tp 1, gt 2, predicted 1 -> 1/2; class 1: tp 1, gt 2, predicted 2 -> 1/3; class 2: 1; class 3 absent
    assert room_miou(pred, labels, 4) == pytest.approx((1 / 2 + 1 / 3 + 1) / 3)


def test_the_real_point_tables_iou_equals_sklearns_jaccard_over_all_frames():
    """``iou_row`` (the real nuScenes point table): one confusion over every frame's points of the subset, equal to
    scikit-learn's per-class Jaccard of the concatenated labels; the mean skips classes with no true point; points
    whose truth is 255 (the ego vehicle) are not scored, whatever is predicted there."""
    from sklearn.metrics import jaccard_score

    from pc_kd.experiments.real_nuscenes_points import POINT_CLASSES, iou_row

    rng = np.random.default_rng(0)
    frames = []
    for n in (37, 0, 101):
        truth = rng.choice([0, 1, 3, 8, 255], n, p=[0.2, 0.1, 0.1, 0.5, 0.1])
        frames.append(dict(truth=truth, pred=np.where(rng.random(n) < 0.6, truth, rng.integers(0, 9, n)),
                           seen=rng.random(n) < 0.7))
    classes = ["car", "truck", "bus", "pedestrian", "bicycle", "motorcycle", "other"]
    for subset in ("seen", "unseen"):
        keep = [(f["seen"] if subset == "seen" else ~f["seen"]) & (f["truth"] != 255) for f in frames]
        assert sum(((f["truth"] == 255) & (f["pred"] == 0)).sum() for f in frames) > 0  # a wrong label, not scored
        truth = np.concatenate([f["truth"][k] for f, k in zip(frames, keep)])
        pred = np.concatenate([f["pred"][k] for f, k in zip(frames, keep)])
        labels = [POINT_CLASSES.index(c) for c in classes]
        expected = jaccard_score(truth, pred, labels=labels, average=None, zero_division=0)
        row = iou_row(frames, "pred", subset, classes)
        assert row["points"] == len(truth)
        present = [k for k, c in enumerate(labels) if (truth == c).any()]
        assert set(present) == {0, 1, 3, 6}  # car, truck, pedestrian, other; bus, bicycle, motorcycle absent
        for k, name in enumerate(classes):
            if k in present:
                assert row["iou"][name] == pytest.approx(expected[k], abs=1e-12)
            else:
                assert np.isnan(row["iou"][name])
        assert row["mIoU"] == pytest.approx(expected[present].mean(), abs=1e-12)
