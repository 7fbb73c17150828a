"""hungarian_miou against a brute-force search over every cluster-to-class assignment."""
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
