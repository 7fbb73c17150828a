"""PartDistill's pieces against hand computations and transcriptions of the anchor's formulas: the distillation loss
on a 3-point / 2-unit example, the class weights (n_c = 0 included), the re-scores, the part mIoU's absent-part
rule, the 98 % rule, the plateau trigger on a made-up loss curve; the synthetic shapes and predictor's fault rates;
the ShapeNetPart and preprocess.h5 readers on small files written in those layouts."""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pc_kd.datasets.synthetic.part_shapes import (PART_CATEGORIES, SyntheticPartBoxPredictor, make_part_shape,
                                                  see_shape, shape_views)
from pc_kd.evaluation import category_miou, overall_miou, part_miou
from pc_kd.models.losses.part_distill import (balance_rescores, part_class_weights, part_distill_loss, plateau_reached,
                                             rescore_units)
from pc_kd.projection import box_units
from pc_kd.structures.part_units import PartBoxes


def test_distill_loss_on_three_points_and_two_units_by_hand():
    # unit A: part 0, score 0.8, points {0, 1}; unit B: part 1, score 0.5, points {1, 2}; weights (1, 2)
    logits = torch.tensor([[[0.0, 0.0], [math.log(3), 0.0], [0.0, math.log(4)]]])  # p = (.5 .5), (.75 .25), (.2 .8)
    scores = torch.tensor([[[0.8, 0.0], [0.8, 0.5], [0.0, 0.5]]])
    labels = torch.tensor([[0, 1]])
    got = part_distill_loss(logits, scores, labels, torch.tensor([1.0, 2.0]))
    point0 = 0.8 * 1 * -math.log(0.5)
    point1 = (0.8 * 1 * -math.log(0.75) + 0.5 * 2 * -math.log(0.25)) / 2
    point2 = 0.5 * 2 * -math.log(0.8)
    assert got.item() == pytest.approx((point0 + point1 + point2) / 3, rel=1e-6)


def _anchor_loss(logits, scores, labels, weights):
    """The anchor's DistillLoss, transcribed: cross-entropy with class weights over [B, P, N, K], times the
    scores, summed over units, divided by the number of covering units (at least 1), averaged."""
    b, n, p = logits.shape
    k = labels.shape[1]
    raw = F.cross_entropy(logits.permute(0, 2, 1)[..., None].expand(b, p, n, k), labels[:, None, :].expand(b, n, k),
                          weight=weights, reduction="none")
    return ((raw * scores).sum(-1) / (scores > 0).sum(-1).clamp(min=1)).mean()


def test_distill_loss_equals_the_anchors_formulation_on_random_batches():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 37, 5, generator=g, requires_grad=True)
    scores = torch.rand(3, 37, 6, generator=g) * (torch.rand(3, 37, 6, generator=g) < 0.3)
    labels = torch.randint(0, 5, (3, 6), generator=g)
    weights = part_class_weights(scores, labels, 5)
    ours = part_distill_loss(logits, scores, labels, weights)
    (grad,) = torch.autograd.grad(ours, logits)
    theirs = _anchor_loss(logits, scores, labels, weights)
    (grad_ref,) = torch.autograd.grad(theirs, logits)
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)
    assert torch.allclose(grad, grad_ref, atol=1e-7)


def test_class_weights_for_given_counts_including_an_absent_part():
    # n = (6, 2, 0) covered (point, unit) pairs; a unit of part 2 exists but covers nothing
    scores = torch.zeros(1, 8, 3)
    scores[0, :6, 0] = 0.7
    scores[0, 6:, 1] = 0.4
    weights = part_class_weights(scores, torch.tensor([[0, 1, 2]]), 3)
    expected = [min(max(1 + math.log(8 / (n * 3), 4), 1), 4) if n else 4.0 for n in (6, 2, 0)]
    assert weights.tolist() == pytest.approx(expected)
    assert weights[0] == 1 and weights[2] == 4 and weights[1] == pytest.approx(1 + math.log(4 / 3, 4))
    assert part_class_weights(torch.zeros(2, 5, 0), torch.zeros(2, 0, dtype=torch.long), 3).tolist() == [1, 1, 1]


def test_rescores_are_the_share_of_a_units_points_the_student_gives_its_label():
    labels = torch.tensor([0, 0, 1, 1, 2])
    units = [torch.tensor([0, 1, 2]), torch.tensor([3, 4]), torch.tensor([], dtype=torch.long), torch.tensor([4])]
    got = rescore_units(labels, units, torch.tensor([0, 1, 1, 2]))
    assert got.tolist() == pytest.approx([2 / 3, 1 / 2, 0.0, 1.0])


def test_balanced_rescores_take_out_the_per_part_mean_and_keep_the_order_within_a_part():
    got = balance_rescores(torch.tensor([0.2, 0.4, 0.8, 0.8, 0.0]), torch.tensor([0, 0, 1, 1, 2]))
    overall = (0.2 + 0.4 + 0.8 + 0.8) / 5
    assert got.tolist() == pytest.approx([0.2 * overall / 0.3, 0.4 * overall / 0.3, overall, overall, 0.0])
    assert got[:2].mean().item() == pytest.approx(overall) and got[0] < got[1]


def test_part_miou_counts_a_part_absent_from_both_as_one():
    assert part_miou([0, 0, 1], [0, 0, 1], (0, 1, 2)) == 1.0
    assert part_miou([0, 1, 1], [0, 0, 1], (0, 1, 2)) == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert part_miou([2, 0, 1], [0, 0, 1], (0, 1, 2)) == pytest.approx((0.5 + 1 + 0) / 3)  # predicted, not there
    assert category_miou([[0, 0], [1, 1]], [[0, 0], [0, 0]], (0, 1)) == pytest.approx((1 + 0) / 2)
    assert overall_miou({"chair": 80.0, "lamp": 40.0}) == 60.0
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        part_miou([0, 0, 1], [0, 0], (0, 1))


def test_units_drop_boxes_covering_98_percent_of_the_visible_points():
    n = 100
    uv = torch.stack([torch.arange(n, dtype=torch.float32) + 0.5, torch.full((n,), 5.0)], 1)[None]
    visible = torch.ones(1, n, dtype=torch.bool)
    visible[0, 50] = False  # 99 visible points; point 50 lies in every box below but does not count
    boxes = torch.tensor([[0, 0, 100, 10],      # every visible point: dropped
                          [0, 0, 98.9, 10],     # points 0..98 minus 50: 98 of 99 visible: dropped
                          [0, 0, 97.9, 10],     # 97 of 99 = 97.98 %: kept
                          [200, 0, 210, 10]])   # empty: dropped
    pred = PartBoxes(boxes, torch.tensor([0, 1, 2, 3]), torch.tensor([0.5, 0.6, 0.7, 0.8]),
                     torch.tensor([True, True, False, True]))
    units = box_units(uv, visible, [pred])
    assert len(units) == 1 and units.labels.tolist() == [2] and units.scores.tolist() == pytest.approx([0.7])
    assert units.points[0].tolist() == [i for i in range(98) if i != 50] and units.correct.tolist() == [False]
    assert units.score_matrix(n)[:, 0].sum().item() == pytest.approx(0.7 * 97)


def _anchor_trigger(losses, window=5):
    """The anchor's moving-average trigger, transcribed: the first (1-based) epoch it fires, else None."""
    mov, prev = [], 0.0
    for epoch, loss in enumerate(losses, 1):
        mov.append(loss)
        if len(mov) > window:
            mov.pop(0)
        diff = abs(np.mean(mov) - prev)
        prev = np.mean(mov)
        if diff < 0.01 and epoch >= window:
            return epoch
    return None


def test_plateau_trigger_on_a_made_up_loss_curve():
    curve = [1.0, 0.8, 0.6, 0.5, 0.45, 0.44, 0.435, 0.43, 0.428, 0.427, 0.426]
    fired = next(e for e in range(1, len(curve) + 1) if plateau_reached(curve[:e]))
    # by hand: the 5-epoch mean moves 0.112, 0.073, 0.034, 0.0144, then 0.0046 < 0.01 after epoch 10
    assert fired == 10 == _anchor_trigger(curve)
    flat = [0.5] * 6
    assert not plateau_reached(flat[:4]) and plateau_reached(flat[:5]) and _anchor_trigger(flat) == 5
    rng = np.random.default_rng(0)
    for _ in range(20):
        noisy = list(np.cumsum(rng.uniform(-0.05, 0.02, 15)) + 2)
        ours = next((e for e in range(1, 16) if plateau_reached(noisy[:e])), None)
        assert ours == _anchor_trigger(noisy)


def test_shapes_are_seeded_unit_sphere_clouds_with_every_required_part():
    for category, parts in PART_CATEGORIES.items():
        a, b = make_part_shape(category, 7), make_part_shape(category, 7)
        assert np.array_equal(a.points, b.points) and np.array_equal(a.part, b.part)
        assert np.linalg.norm(a.points, axis=1).max() == pytest.approx(1.0, abs=1e-5)
        required = {"chair": {0, 1, 2}, "table": {0, 1}, "lamp": {0, 1, 2}}[category]
        for seed in range(5):
            assert required <= set(make_part_shape(category, seed).part.tolist())
        assert a.part.max() < len(parts)
    with pytest.raises(ValueError, match="unknown category 'sofa'"):
        make_part_shape("sofa", 0)


def test_synthetic_predictor_fault_rates_and_wrong_labels_hidden_in_confidence():
    boxes, parts_seen = [], 0
    for seed in range(30):
        shape = make_part_shape("chair", seed)
        views = see_shape(shape, shape_views(10, seed=seed))
        predictor = SyntheticPartBoxPredictor(4, whole_object=0.0, seed=seed)
        boxes += predictor.predict(views)
        parts_seen += sum(len([p for p in np.unique(views.part[views.visible[v]].numpy())
                               if (views.part[views.visible[v]] == p).sum() >= 5]) for v in range(10))
    correct = torch.cat([b.correct for b in boxes])
    scores = torch.cat([b.scores for b in boxes])
    assert abs(len(correct) / parts_seen - 0.7) < 0.05  # 30 % missed (about 1000 boxes: 3.4 sigma)
    assert abs((~correct).float().mean().item() - 0.2) < 0.045  # 20 % relabelled (3 sigma)
    assert abs(scores[correct].mean() - scores[~correct].mean()) < 0.04  # the same confidence distribution
    assert 0.4 <= scores.min() and scores.max() <= 0.9
    # whole-object boxes: every one dropped by the 98 % rule
    shape = make_part_shape("table", 3)
    views = see_shape(shape, shape_views(10, seed=3))
    predictions = SyntheticPartBoxPredictor(3, miss=1.0, whole_object=1.0, seed=0).predict(views)
    assert sum(len(p.boxes) for p in predictions) == 10 and len(box_units(views.uv, views.visible, predictions)) == 0


def test_binary_auc_against_counting_pairs():
    from pc_kd.experiments.partdistill import binary_auc

    rng = np.random.default_rng(1)
    scores = np.round(rng.uniform(size=60), 1)  # ties
    positive = rng.uniform(size=60) < 0.4
    pos, neg = scores[positive], scores[~positive]
    pairs = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    assert binary_auc(scores, positive) == pytest.approx(pairs)


def test_teacher_vote_by_hand():
    from pc_kd.experiments.partdistill import ShapeSet, teacher_vote

    points = np.array([[[0, 0, 0], [1, 0, 0], [2, 0, 0], [2.2, 0, 0]]], np.float32)
    data = ShapeSet("lamp", points, np.zeros((1, 4), np.int64), [[np.array([0, 1]), np.array([1, 2])]],
                    [np.array([1, 2])], [np.array([0.5, 0.9])], [np.array([True, True])])
    # point 1: the 0.9 unit wins; point 3 is uncovered and takes its nearest covered neighbour's (point 2)
    assert teacher_vote(data).tolist() == [[1, 2, 2, 2]]


def test_shape_set_cache_reads_back_what_was_written(tmp_path):
    from pc_kd.experiments import partdistill as pd

    s = pd.Settings(num_points=256, num_views=4)
    data = pd.make_shape_set("chair", 3, 3, s, log=lambda *_: None)
    pd.save_shape_set(data, tmp_path / "set.npz")
    back = pd.load_shape_set(tmp_path / "set.npz")
    assert back.category == "chair" and np.array_equal(back.points, data.points)
    for name in ("unit_labels", "unit_scores", "unit_correct"):
        assert all(np.array_equal(x, y) for x, y in zip(getattr(back, name), getattr(data, name)))
    assert all(len(x) == len(y) and all(np.array_equal(p, q) for p, q in zip(x, y))
               for x, y in zip(back.unit_points, data.unit_points))


def test_shapenet_part_reader_on_files_in_the_official_layout(tmp_path):
    from pc_kd.datasets.shapenet_part import PART_START, read_shapenet_part_split

    (tmp_path / "synsetoffset2category.txt").write_text("Airplane\t02691156\nChair\t03001627\nLamp\t03636649\n")
    (tmp_path / "03001627").mkdir()
    (tmp_path / "03636649").mkdir()
    rows = np.array([[0.1, 0.2, 0.3, 0, 0, 1, 12], [0.4, 0.5, 0.6, 0, 1, 0, 15]])
    np.savetxt(tmp_path / "03001627" / "abc.txt", rows, fmt="%.6f %.6f %.6f %.6f %.6f %.6f %d")
    np.savetxt(tmp_path / "03636649" / "def.txt", rows[:1] + [0, 0, 0, 0, 0, 0, 1], fmt="%.6f " * 6 + "%d")  # 13
    (tmp_path / "train_test_split").mkdir()
    (tmp_path / "train_test_split" / "shuffled_train_file_list.json").write_text(
        json.dumps(["shape_data/03001627/abc", "shape_data/03636649/def"]))
    shapes = read_shapenet_part_split(tmp_path, "train", categories=["chair"])
    assert len(shapes) == 1 and shapes[0]["category"] == "chair" and shapes[0]["part"].tolist() == [0, 3]
    assert np.allclose(shapes[0]["points"], rows[:, :3]) and PART_START["chair"] == 12 and PART_START["lamp"] == 24
    with pytest.raises(ValueError, match=r"def\.txt:1: part 13 is outside lamp's parts 24\.\.27"):
        read_shapenet_part_split(tmp_path, "train")  # a chair part in a lamp
    with pytest.raises(FileNotFoundError, match="shuffled_test_file_list.json"):
        read_shapenet_part_split(tmp_path, "test")


def test_partdistill_h5_reader_on_a_small_file(tmp_path):
    h5py = pytest.importorskip("h5py", reason="h5py reads PartDistill's preprocess.h5")
    from pc_kd.datasets.shapenet_part import read_partdistill_h5

    conf = np.zeros((5, 2, 4), np.float32)
    conf[[0, 1], 0, 2] = 0.6  # unit 0 (part 2) on points 0, 1
    conf[[3], 1, 0] = 0.3     # unit 1 (part 0) on point 3
    with h5py.File(tmp_path / "preprocess.h5", "w") as f:
        f["xyz"] = np.arange(15, dtype=np.float32).reshape(5, 3)
        f["cls_bbox"] = np.array([[2, 0]])
        f["conf_bbox"] = conf
        f["gt_semantic_seg"] = np.array([12, 13, 14, 15, 12])
        f["cls_view"] = np.zeros((10, 5, 2))
        f["conf_view"] = np.zeros((10, 5, 2, 4))
    shape = read_partdistill_h5(tmp_path / "preprocess.h5", "chair")
    assert shape["part"].tolist() == [0, 1, 2, 3, 0] and shape["unit_labels"].tolist() == [2, 0]
    assert np.allclose(shape["unit_scores"], [[0.6, 0], [0.6, 0], [0, 0], [0, 0.3], [0, 0]])
    with h5py.File(tmp_path / "broken.h5", "w") as f:
        f["xyz"] = np.zeros((5, 3))
    with pytest.raises(KeyError, match="missing datasets"):
        read_partdistill_h5(tmp_path / "broken.h5", "chair")


@pytest.mark.slow
def test_every_student_mode_trains_and_backward_distillation_rescores_every_unit():
    from pc_kd.experiments import partdistill as pd

    s = pd.Settings(num_points=512, num_views=4, epochs=4, batch_size=2, plateau_window=2, plateau_tol=10.0,
                    channels=(8, 16, 16, 32))
    data = pd.make_shape_set("lamp", 0, 4, s, log=lambda *_: None)
    for mode in ("forward", "supervised"):
        out = pd.train_student(data, s, 0, mode, log=lambda *_: None)
        assert len(out["losses"]) == 4 and out["trigger"] is None and np.isfinite(out["losses"]).all()
    out = pd.train_student(data, s, 0, "backward", log=lambda *_: None)
    assert out["trigger"] == 2  # tolerance 10: the plateau fires as soon as the window is full
    assert [len(r) for r in out["rescores"]] == [len(u) for u in data.unit_labels]
    assert pd.predict(out["model"], data.points).shape == data.part.shape
    with pytest.raises(ValueError, match="mode must be"):
        pd.train_student(data, s, 0, "sideways")
