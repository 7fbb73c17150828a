"""BEV distillation losses against independent oracles: hand-written keypoints, a map whose value names its cell,
float64 loops per box and keypoint with a hand-written bilinear sample, and draw_gaussian per box."""
import numpy as np
import pytest
import torch

from pc_kd.heads.det.gaussian import draw_gaussian, gaussian_radius
from pc_kd.models.losses.bev_distill import (box_keypoints, dense_feature_loss, keypoint_feature_loss,
                                             keypoint_relation_loss, response_loss, response_mask, sample_bev)

GRID = dict(x_range=(-8.0, 8.0), y_range=(-4.0, 6.0), z_range=(-5.0, 3.0), cell=(0.5, 0.4))  # H 25, W 32
H, W = 25, 32


def _boxes(n, seed):
    g = np.random.default_rng(seed)
    return torch.from_numpy(np.stack([g.uniform(-9, 9, n), g.uniform(-5, 7, n), g.uniform(-1, 1, n),
                                      g.uniform(0.4, 5, n), g.uniform(0.4, 2.5, n), g.uniform(1, 2, n),
                                      g.uniform(-np.pi, np.pi, n)], 1))


def test_box_keypoints_are_corners_centre_and_edge_midpoints_and_turn_with_the_box():
    box = torch.tensor([[1.0, 2.0, 0.0, 4.0, 2.0, 1.5, 0.0]], dtype=torch.float64)
    expected = [[3, 3], [-1, 3], [-1, 1], [3, 1], [1, 2], [1, 3], [-1, 2], [1, 1], [3, 2]]
    torch.testing.assert_close(box_keypoints(box)[0], torch.tensor(expected, dtype=torch.float64))
    for yaw in (0.3, -2.0, 3.0):
        turned = box.clone()
        turned[0, 6] = yaw
        rot = torch.tensor([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]], dtype=torch.float64)
        centre = box[0, :2]
        torch.testing.assert_close(box_keypoints(turned)[0], (box_keypoints(box)[0] - centre) @ rot.T + centre)
    with pytest.raises(ValueError, match=r"\[N, >=7\]"):
        box_keypoints(torch.zeros(3, 5))


def test_sample_bev_reads_x_along_w_and_y_along_h_at_cell_centres_and_zero_outside():
    i, j = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    feat = torch.stack([j + 100 * i, -j])[None]  # [1, 2, H, W]: channel 0 = column + 100 * row
    cells = torch.tensor([[0, 0], [3, 7], [31, 24], [10, 2]], dtype=torch.float64)  # (column, row)
    xy = torch.stack([-8.0 + (cells[:, 0] + 0.5) * 0.5, -4.0 + (cells[:, 1] + 0.5) * 0.4], 1)
    half = torch.tensor([[-8.0 + 4.0 * 0.5, -4.0 + 5.0 * 0.4]], dtype=torch.float64)  # between columns 3, 4 / rows 4, 5
    out = sample_bev(feat, torch.cat([xy, half])[None, :, None], GRID)[0, :, 0]
    torch.testing.assert_close(out[:4, 0], cells[:, 0] + 100 * cells[:, 1])
    torch.testing.assert_close(out[:4, 1], -cells[:, 0])
    torch.testing.assert_close(out[4, 0], torch.tensor(3.5 + 100 * 4.5, dtype=torch.float64))
    far = sample_bev(feat, torch.tensor([[[[30.0, 0.0], [0.0, -20.0]]]], dtype=torch.float64), GRID)
    assert far.abs().max() == 0
    with pytest.raises(ValueError, match=r"\(H, W\) = \(25, 32\)"):
        sample_bev(feat[..., :-1], xy[None, :, None], GRID)


def _bilinear(feat, x, y):
    """Hand-written bilinear sample of ``feat [C, H, W]`` at metres (x, y), cell values at cell centres, 0 outside."""
    u, v = (x - GRID["x_range"][0]) / 0.5 - 0.5, (y - GRID["y_range"][0]) / 0.4 - 0.5
    j0, i0 = int(np.floor(u)), int(np.floor(v))
    out = torch.zeros(feat.shape[0], dtype=torch.float64)
    for di in (0, 1):
        for dj in (0, 1):
            w = (1 - abs(u - j0 - dj)) * (1 - abs(v - i0 - di))
            if 0 <= i0 + di < H and 0 <= j0 + dj < W:
                out += w * feat[:, i0 + di, j0 + dj]
    return out


def _keypoint_loop(fs, ft, boxes, relation):
    total, count = 0.0, sum(len(b) for b in boxes)
    for b, bx in enumerate(boxes):
        for box in bx:
            kps = box_keypoints(box[None])[0]
            s = torch.stack([_bilinear(fs[b], float(x), float(y)) for x, y in kps])
            t = torch.stack([_bilinear(ft[b], float(x), float(y)) for x, y in kps])
            if relation:
                s, t = s / (s.norm(dim=1, keepdim=True) + 1e-4), t / (t.norm(dim=1, keepdim=True) + 1e-4)
                s, t = s @ s.T, t @ t.T
            total += float((s - t).abs().mean())
    return total / (count + 1e-4)


@pytest.mark.parametrize("relation", [False, True])
def test_keypoint_losses_equal_a_float64_loop_per_box_and_keypoint(relation):
    g = torch.Generator().manual_seed(0)
    fs, ft = torch.randn(3, 5, H, W, generator=g, dtype=torch.float64), torch.randn(3, 5, H, W, generator=g,
                                                                                 dtype=torch.float64)
    boxes = [_boxes(4, 1), _boxes(0, 2), _boxes(7, 3)]  # boxes reach past the map's borders
    loss_fn = keypoint_relation_loss if relation else keypoint_feature_loss
    loss = loss_fn(fs, ft, boxes, GRID)
    assert abs(float(loss) - _keypoint_loop(fs, ft, boxes, relation)) < 1e-9


@pytest.mark.parametrize("loss_fn", [keypoint_feature_loss, keypoint_relation_loss, dense_feature_loss])
def test_losses_adapt_the_samples_or_cells_as_the_adapted_map_gives_values_and_gradients(loss_fn):
    g = torch.Generator().manual_seed(5)
    fs, ft = torch.randn(2, 3, H, W, generator=g, dtype=torch.float64), torch.randn(2, 4, H, W, generator=g,
                                                                                 dtype=torch.float64)
    boxes = [_boxes(6, 4), _boxes(5, 6)]  # keypoints past the borders: there the bias counts by the taps inside
    adapter = torch.nn.Conv2d(3, 4, 1).double()
    a, b = fs.clone().requires_grad_(True), fs.clone().requires_grad_(True)
    loss = loss_fn(a, ft, boxes, GRID, adapter=adapter)
    loss.backward()
    grads = [p.grad.clone() for p in adapter.parameters()]
    adapter.zero_grad()
    ref = loss_fn(adapter(b), ft, boxes, GRID)
    ref.backward()
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(a.grad, b.grad)
    for got, want in zip(grads, [p.grad for p in adapter.parameters()]):
        torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="1 x 1 nn.Conv2d"):
        loss_fn(fs, ft, boxes, GRID, adapter=torch.nn.Conv2d(3, 4, 3, padding=1).double())
    with pytest.raises(ValueError, match="the adapter takes 3 channels"):
        loss_fn(ft, ft, boxes, GRID, adapter=adapter)


def test_response_mask_equals_draw_gaussian_per_box():
    boxes = [_boxes(9, 4), torch.zeros(0, 7), _boxes(5, 5)]
    boxes[0][0, 3:5] = torch.tensor([0.3, 0.3])  # radius 0
    expected = torch.zeros(3, H, W, dtype=torch.float64)
    for b, bx in enumerate(boxes):
        for box in bx:
            radius = max(0, int(gaussian_radius(float(box[3]) / 0.5, float(box[4]) / 0.4, 0.7)))
            draw_gaussian(expected[b], (int(np.floor((box[0] + 8) / 0.5)), int(np.floor((box[1] + 4) / 0.4))), radius)
    torch.testing.assert_close(response_mask(boxes, GRID), expected, atol=0, rtol=0)
    assert expected[1].max() == 0 and expected[0].max() == 1


# head outputs per task: heatmap classes and the regression maps' channels (key order as response_loss reads them)
SAME_LAYOUT = [dict(heatmap=1, reg=2, rot=2), dict(heatmap=2, reg=2, rot=2)]
MIXED_LAYOUT = [dict(heatmap=1, reg=2, rot=2, vel=2), dict(heatmap=3, reg=2), dict(heatmap=2)]
REG_KEYS = ("reg", "height", "dim", "rot", "vel")  # response_loss's default reg_keys, in its order


def _head_maps(seed, layout=SAME_LAYOUT):
    g = torch.Generator().manual_seed(seed)
    return [{k: torch.randn(2, n, H, W, generator=g, dtype=torch.float64) for k, n in task.items()}
            for task in layout]


@pytest.mark.parametrize("layout", [SAME_LAYOUT, MIXED_LAYOUT], ids=["same-regression", "mixed-regression"])
def test_response_loss_equals_a_loop_over_cells(layout):
    """Per cell: one max over every class of every task, one mean over every task's regression channels."""
    s_out, t_out = _head_maps(0, layout), _head_maps(1, layout)
    boxes = [_boxes(6, 6), _boxes(3, 7)]
    out = response_loss(s_out, t_out, boxes, GRID, min_overlap=0.7, t_temp=2.0, clamp=1e-4)
    mask = response_mask(boxes, GRID, 0.7)
    cls = reg = 0.0
    for b in range(2):
        for i in range(H):
            for j in range(W):
                m = float(mask[b, i, j])
                if m == 0:
                    continue
                hs = max(min(max(1 / (1 + np.exp(-float(v))), 1e-4), 1 - 1e-4)
                         for s in s_out for v in s["heatmap"][b, :, i, j])
                ht = max(min(max(1 / (1 + np.exp(-float(v) / 2)), 1e-4), 1 - 1e-4)
                         for t in t_out for v in t["heatmap"][b, :, i, j])
                cls += m * abs(hs - ht)
                rs = torch.cat([s[k][b, :, i, j] for s in s_out for k in REG_KEYS if k in s])
                rt = torch.cat([t[k][b, :, i, j] for s, t in zip(s_out, t_out) for k in REG_KEYS if k in s])
                reg += m * float((rs - rt).abs().mean())
    norm = float(mask.sum()) + 1e-4
    assert abs(float(out["cls"]) - cls / norm) < 1e-9 and abs(float(out["reg"]) - reg / norm) < 1e-9
    # the gradient of every regression map: the sign of the difference inside the mask over all tasks' channels
    s_out = [{k: v.clone().requires_grad_(True) for k, v in task.items()} for task in s_out]
    out = response_loss(s_out, t_out, boxes, GRID, min_overlap=0.7, t_temp=2.0, clamp=1e-4)
    out["reg"].backward()
    width = sum(s[k].shape[1] for s in s_out for k in REG_KEYS if k in s)
    for s, t in zip(s_out, t_out):
        for k in [k for k in REG_KEYS if k in s]:
            expected = mask[:, None] * torch.sign(s[k].detach() - t[k]) / width / norm
            torch.testing.assert_close(s[k].grad, expected, rtol=1e-12, atol=1e-15)
        assert s["heatmap"].grad is None


# --- transcriptions of the anchors' code (numpy, float64), written from UniDistill's ResponseDistillLoss and
# calculate_box_mask_gaussian and BEVDistill's get_bev_fit_loss; they share nothing with pc_kd ---
def _anchor_gaussian_radius(height, width, min_overlap):
    b1, c1 = height + width, width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2, c2 = 2 * (height + width), (1 - min_overlap) * width * height
    r2 = (b2 + np.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (height + width), (min_overlap - 1) * width * height
    r3 = (b3 + np.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def _anchor_draw(heatmap, cx, cy, radius):
    """CenterNet's draw_umich_gaussian: sigma = diameter / 6, values below eps * max dropped, max-merged."""
    d = 2 * radius + 1
    y, x = np.ogrid[-radius:radius + 1, -radius:radius + 1]
    g = np.exp(-(x * x + y * y) / (2 * (d / 6) ** 2))
    g[g < np.finfo(g.dtype).eps * g.max()] = 0
    h, w = heatmap.shape
    left, right, top, bottom = min(cx, radius), min(w - cx, radius + 1), min(cy, radius), min(h - cy, radius + 1)
    np.maximum(heatmap[cy - top:cy + bottom, cx - left:cx + right],
               g[radius - top:radius + bottom, radius - left:radius + right],
               out=heatmap[cy - top:cy + bottom, cx - left:cx + right])


def _anchor_mask(boxes, min_overlap, min_radius, cell=(0.5, 0.4), origin=(-8.0, -4.0)):
    mask = np.zeros((len(boxes), H, W))
    for i, bx in enumerate(boxes):
        for box in np.asarray(bx, dtype=np.float64):
            r = max(min_radius, int(_anchor_gaussian_radius(box[3] / cell[0], box[4] / cell[1], min_overlap)))
            _anchor_draw(mask[i], int((box[0] - origin[0]) / cell[0]), int((box[1] - origin[1]) / cell[1]), r)
    return mask


def _boxes_inside(n, seed):
    """Boxes whose centres lie inside GRID (the anchors' int() truncation and pc_kd's floor agree there)."""
    b = _boxes(n, seed)
    b[:, 0], b[:, 1] = b[:, 0].clamp(-7.9, 7.9), b[:, 1].clamp(-3.9, 5.9)
    return b


# CenterPoint's six nuScenes tasks: classes per task, and each task's regression maps
NUSCENES_TASKS = [dict(heatmap=n, reg=2, height=1, dim=3, rot=2, vel=2) for n in (1, 2, 2, 1, 2, 2)]


def test_response_loss_equals_unidistills_formula_on_a_six_task_head():
    s_out, t_out = _head_maps(20, NUSCENES_TASKS), _head_maps(21, NUSCENES_TASKS)
    boxes = [_boxes_inside(7, 22), _boxes_inside(4, 23)]
    boxes[0][0, 3:5] = torch.tensor([0.3, 0.3])  # radius 0: the centre cell only

    def sig(x):  # UniDistill's _sigmoid
        return np.clip(1 / (1 + np.exp(-x)), 1e-4, 1 - 1e-4)

    cls_s = np.concatenate([sig(s["heatmap"].numpy()) for s in s_out], 1).max(1)
    cls_t = np.concatenate([sig(t["heatmap"].numpy() / 2) for t in t_out], 1).max(1)
    reg_s = np.concatenate([np.concatenate([s[k].numpy() for k in REG_KEYS], 1) for s in s_out], 1)
    reg_t = np.concatenate([np.concatenate([t[k].numpy() for k in REG_KEYS], 1) for t in t_out], 1)
    mask = _anchor_mask(boxes, 0.7, 0)
    weight = mask.sum()
    expected_reg = (np.abs(reg_s - reg_t).mean(1) * mask).sum() / (weight + 1e-4)
    expected_cls = (np.abs(cls_s - cls_t) * mask).sum() / (weight + 1e-4)
    out = response_loss(s_out, t_out, boxes, GRID, min_overlap=0.7, t_temp=2.0)
    assert abs(float(out["cls"]) - expected_cls) < 1e-9 and abs(float(out["reg"]) - expected_reg) < 1e-9
    torch.testing.assert_close(response_mask(boxes, GRID, 0.7), torch.from_numpy(mask), atol=1e-15, rtol=0)


def test_dense_feature_loss_equals_bevdistills_fit_loss():
    """BEVDistill's foreground map (overlap 0.1, radius at least 1) and its squared error summed over channels."""
    g = torch.Generator().manual_seed(5)
    fs, ft = torch.randn(2, 3, H, W, generator=g, dtype=torch.float64), torch.randn(2, 3, H, W, generator=g,
                                                                                 dtype=torch.float64)
    boxes = [_boxes_inside(5, 10), _boxes_inside(2, 11)]
    boxes[1][0, 3:5] = torch.tensor([0.3, 0.3])  # a traffic cone: radius 0 by the formula, 1 by BEVDistill's rule
    fg_map = _anchor_mask(boxes, 0.1, 1)
    fit = (fs.numpy() - ft.numpy()) ** 2  # F.mse_loss(reduction='none')
    expected = (fit * fg_map[:, None]).sum() / (fg_map.sum() + 1e-4)
    assert abs(float(dense_feature_loss(fs, ft, boxes, GRID)) - expected) < 1e-9
    # a bigger overlap draws smaller Gaussians: a different weighting
    assert abs(float(dense_feature_loss(fs, ft, boxes, GRID, min_overlap=0.7)) - expected) > 1e-6


def test_losses_vanish_for_equal_maps_reach_only_the_student_and_survive_empty_batches():
    g = torch.Generator().manual_seed(2)
    fs = torch.randn(2, 4, H, W, generator=g, dtype=torch.float64, requires_grad=True)
    ft = fs.detach().clone().requires_grad_(True)
    boxes = [_boxes(3, 8), _boxes(2, 9)]
    s_out = [{k: v.clone().requires_grad_(True) for k, v in task.items()} for task in _head_maps(3)]
    same = [{k: v.detach().clone() * (2.0 if k == "heatmap" else 1.0) for k, v in task.items()} for task in s_out]
    for fn in (keypoint_feature_loss, keypoint_relation_loss, dense_feature_loss):
        assert float(fn(fs, ft, boxes, GRID)) < 1e-12
    out = response_loss(s_out, same, boxes, GRID)  # the teacher's logits are divided by t_temp = 2
    assert float(out["cls"]) < 1e-12 and float(out["reg"]) < 1e-12
    other = torch.randn(2, 4, H, W, generator=g, dtype=torch.float64, requires_grad=True)
    (keypoint_feature_loss(fs, other, boxes, GRID) + keypoint_relation_loss(fs, other, boxes, GRID)
     + dense_feature_loss(fs, other, boxes, GRID)).backward()
    assert fs.grad is not None and fs.grad.abs().sum() > 0 and other.grad is None
    empty = [torch.zeros(0, 7), torch.zeros(0, 9)]
    for fn in (keypoint_feature_loss, keypoint_relation_loss, dense_feature_loss):
        loss = fn(fs, other, empty, GRID)
        assert float(loss) == 0 and loss.requires_grad and torch.isfinite(loss)
        loss.backward()
    out = response_loss(s_out, _head_maps(4), empty, GRID)
    assert float(out["cls"]) == 0 and float(out["reg"]) == 0 and out["cls"].requires_grad


def test_mismatched_student_and_teacher_maps_are_named():
    a, b = torch.zeros(1, 4, H, W), torch.zeros(1, 8, H, W)
    with pytest.raises(ValueError, match=r"student map \(1, 4, 25, 32\) and teacher map \(1, 8, 25, 32\)"):
        keypoint_feature_loss(a, b, [torch.zeros(0, 7)], GRID)
    with pytest.raises(ValueError, match="task 0 map 'rot' differs"):
        s = _head_maps(0)
        t = _head_maps(1)
        t[0]["rot"] = t[0]["rot"][:, :1]
        response_loss(s, t, [torch.zeros(0, 7)] * 2, GRID)
    with pytest.raises(ValueError, match="2 tasks, the teacher's 1"):
        response_loss(_head_maps(0), _head_maps(1, SAME_LAYOUT[:1]), [torch.zeros(0, 7)] * 2, GRID)
