"""hungarian_miou against a brute-force search over every cluster-to-class assignment, and its two conventions
for the clusters left unmatched on a hand-made confusion matrix."""
import itertools

import numpy as np
import pytest

from pc_kd.evaluation import hungarian_miou


def _brute_force(pred, gt, num_classes, ignore_index):
    keep = gt != ignore_index
    pred, gt = pred[keep], gt[keep]
    k = int(max(pred.max() + 1, num_classes))
    best, best_map = -1, None
    for classes in itertools.permutations(range(k), k):  # cluster i -> class classes[i] (>= C: unmatched)
        mapping = np.array([c if c < num_classes else -1 for c in classes])
        correct = (mapping[pred] == gt).sum()
        if correct > best:
            best, best_map = correct, mapping
    matched = best_map[pred]
    ious = []
    for c in range(num_classes):
        tp = ((matched == c) & (gt == c)).sum()
        union = ((matched == c) | (gt == c)).sum()
        ious.append(tp / union if union else np.nan)
    return best / len(gt), np.array(ious)


@pytest.mark.parametrize("seed,clusters", [(0, 3), (1, 4), (2, 5), (3, 6)])
def test_matches_brute_force_on_small_cases(seed, clusters):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 3, 200)
    gt[rng.random(200) < 0.1] = -1
    pred = np.where(rng.random(200) < 0.6, (gt + seed) % clusters, rng.integers(0, clusters, 200))
    pred[gt == -1] = rng.integers(0, clusters, (gt == -1).sum())
    out = hungarian_miou(pred, gt, 3)
    oacc, iou = _brute_force(pred, gt, 3, -1)
    assert out["oacc"] == pytest.approx(oacc)
    np.testing.assert_allclose(out["iou"], iou)
    assert out["miou"] == pytest.approx(np.nanmean(iou))
    assert sorted(out["mapping"][out["mapping"] >= 0].tolist()) == [0, 1, 2]


def test_perfect_clustering_with_permuted_ids_scores_one():
    gt = np.repeat(np.arange(4), 10)
    out = hungarian_miou((gt + 2) % 4, gt, 4)
    assert out["miou"] == 1.0 and out["oacc"] == 1.0 and out["mapping"].tolist() == [2, 3, 0, 1]


def test_bad_input():
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        hungarian_miou(np.zeros(3, int), np.zeros(2, int), 2)
    with pytest.raises(ValueError, match="labels outside 0..1"):
        hungarian_miou(np.zeros(2, int), np.array([0, 5]), 2)


def test_unmatched_clusters_count_wrong_by_default_or_drop_out_when_ignored():
    # class 0: 10 points in cluster 0, 2 in cluster 2; class 1: 8 in cluster 1, 3 in cluster 2, 1 in cluster 0.
    # cluster 0 -> class 0, cluster 1 -> class 1, cluster 2 unmatched (5 points)
    gt = np.array([0] * 12 + [1] * 12)
    pred = np.array([0] * 10 + [2] * 2 + [1] * 8 + [2] * 3 + [0])
    strict = hungarian_miou(pred, gt, 2)
    assert strict["mapping"].tolist() == [0, 1, -1] and strict["unmatched"] == "wrong"
    np.testing.assert_allclose(strict["iou"], [10 / 13, 8 / 12])  # unmatched points: misses of their class
    assert strict["oacc"] == pytest.approx(18 / 24) and strict["unmatched_points"] == 5
    loose = hungarian_miou(pred, gt, 2, unmatched="ignore")
    np.testing.assert_allclose(loose["iou"], [10 / 11, 8 / 9])  # as if cluster 2's points were never scored
    assert loose["oacc"] == pytest.approx(18 / 19) and loose["unmatched_points"] == 5
    keep = pred != 2
    np.testing.assert_allclose(hungarian_miou(pred[keep], gt[keep], 2)["iou"], loose["iou"])
    with pytest.raises(ValueError, match="unmatched must be 'wrong' or 'ignore'"):
        hungarian_miou(pred, gt, 2, unmatched="drop")
