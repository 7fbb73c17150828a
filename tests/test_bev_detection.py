"""BEV detection pieces against independent oracles: CenterHead encode/decode, focal loss, pillar encoder,
LSS frustum and depth targets, BEV augmentation, multi-view image loading, and the errors of bad input."""
import numpy as np
import pytest
import torch

from pc_kd.datasets.transforms import BEVAugment, LoadMultiViewImages, PointsToDepthMaps
from pc_kd.heads.det import CenterHead, gaussian_focal_loss
from pc_kd.models.backbones import LSSTransform, PillarBEVEncoder
from pc_kd.projection import project_points
from pc_kd.structures import Boxes3D

PC_RANGE = [-32.0, -32.0, -5.0, 32.0, 32.0, 3.0]
TASKS = [dict(class_names=["car"]), dict(class_names=["pedestrian", "traffic_cone"])]


def _head(**kw):
    return CenterHead(in_channels=8, tasks=TASKS, point_cloud_range=PC_RANGE, out_cell=(0.8, 0.8), **kw)


def _outputs_from_targets(head, targets):
    """Head outputs that say exactly what the targets say: logits of the heatmaps, codes at the box cells."""
    H, W = head.grid_hw
    outs = []
    for tg in targets:
        heat = tg["heatmap"].clamp(1e-6, 1 - 1e-6)
        out = {"heatmap": torch.log(heat / (1 - heat))[None]}
        codes = torch.zeros(head.num_codes, H * W)
        codes[:, tg["ind"]] = tg["box"].T
        start = 0
        for key in ("reg", "height", "dim", "rot", "vel"):
            n = head.common_heads[key]
            out[key] = codes[start:start + n].view(1, n, H, W)
            start += n
        outs.append(out)
    return outs


def test_one_box_encodes_to_a_peak_at_its_floor_cell_and_decodes_back_to_itself():
    head = _head()
    box = torch.tensor([[5.3, -7.9, -0.9, 4.5, 1.9, 1.6, 0.7, 3.0, -1.0]], dtype=torch.float64)
    targets = head.get_targets(Boxes3D(box), torch.tensor([0]))  # car
    ix, iy = int(np.floor((5.3 + 32) / 0.8)), int(np.floor((-7.9 + 32) / 0.8))
    heat = targets[0]["heatmap"][0]
    assert heat[iy, ix] == 1.0 and (heat == 1.0).sum() == 1
    assert targets[0]["ind"].tolist() == [iy * head.grid_hw[1] + ix]
    assert targets[1]["heatmap"].max() == 0 and len(targets[1]["ind"]) == 0
    pred = head.predict(_outputs_from_targets(head, targets))[0]
    assert len(pred) == 1 and pred.labels_3d.tolist() == [0]
    torch.testing.assert_close(pred.bboxes_3d.tensor, box, atol=1e-5, rtol=0)


def test_boxes_of_a_two_class_task_go_to_their_class_channel_and_the_loss_is_small_for_perfect_maps():
    head = _head()
    boxes = Boxes3D(torch.tensor([[10.1, 3.3, -1.0, 0.7, 0.7, 1.7, -2.0, 1.0, 0.5],
                                  [-20.4, 15.2, -1.4, 0.4, 0.4, 0.8, 0.0, 0.0, 0.0],
                                  [40.0, 0.0, -1.0, 4.0, 2.0, 1.5, 0.0, 0.0, 0.0]], dtype=torch.float64))
    labels = torch.tensor([7, 8, 0])  # pedestrian, traffic cone, a car outside the grid (skipped)
    targets = head.get_targets(boxes, labels)
    assert targets[1]["heatmap"][0].max() == 1 and targets[1]["heatmap"][1].max() == 1
    assert len(targets[0]["ind"]) == 0 and len(targets[1]["ind"]) == 2
    outs = _outputs_from_targets(head, targets)
    losses = head.loss(outs, [boxes], [labels])
    assert float(losses["loss_bbox_1"]) < 1e-5
    pred = head.predict(outs)[0]
    order = pred.labels_3d.argsort()
    torch.testing.assert_close(pred.bboxes_3d.tensor[order], boxes.tensor[:2], atol=1e-5, rtol=0)


def test_a_nan_velocity_target_weighs_nothing_and_the_rest_of_its_box_still_teaches():
    head = _head()
    box = [[5.3, -7.9, -0.9, 4.5, 1.9, 1.6, 0.7, np.nan, np.nan], [-10.2, 3.1, -1.0, 4.2, 1.8, 1.5, -0.3, 2.0, 1.0]]
    boxes, labels = Boxes3D(torch.tensor(box, dtype=torch.float64)), torch.tensor([0, 0])
    targets = head.get_targets(boxes, labels)
    assert torch.isnan(targets[0]["box"][0, 8:]).all()
    outs = _outputs_from_targets(head, [dict(tg, box=tg["box"].nan_to_num()) for tg in targets])
    loss = head.loss(outs, [boxes], [labels])["loss_bbox_0"]
    assert torch.isfinite(loss) and float(loss) < 1e-6  # the prediction is right wherever the target is known
    for t in outs:
        t["vel"] = t["vel"] + 1.0
    # every known velocity channel is now off by 1: 2 channels x code weight 0.2 x 0.25, over the 2 boxes' cells
    torch.testing.assert_close(head.loss(outs, [boxes], [labels])["loss_bbox_0"], torch.tensor(2 * 0.2 * 0.25 / 2),
                               atol=1e-5, rtol=0)
    known = Boxes3D(torch.tensor(box, dtype=torch.float64).nan_to_num())  # zeroed instead: the head learns 0 m/s
    torch.testing.assert_close(head.loss(outs, [known], [labels])["loss_bbox_0"], torch.tensor(4 * 0.2 * 0.25 / 2),
                               atol=1e-5, rtol=0)


def test_reg_radius_gives_every_neighbour_cell_the_same_box_with_offsets_from_itself():
    head = _head(reg_radius=1)
    boxes = Boxes3D(torch.tensor([[5.3, -7.9, -0.9, 4.5, 1.9, 1.6, 0.7, 3.0, -1.0],
                                  [-31.7, 31.5, -1.0, 4.0, 2.0, 1.5, -1.2, 0.0, 0.0]], dtype=torch.float64))
    targets = head.get_targets(boxes, torch.tensor([0, 0]))[0]
    assert targets["num_boxes"] == 2
    assert len(targets["ind"]) == 9 + 4  # the corner box keeps the 2 x 2 cells inside the grid
    H, W = head.grid_hw
    for ind, code in zip(targets["ind"].tolist(), targets["box"].double()):
        iy, ix = divmod(ind, W)
        centre = torch.tensor([(ix + code[0]) * 0.8 - 32.0, (iy + code[1]) * 0.8 - 32.0], dtype=torch.float64)
        k = int(torch.cdist(centre[None], boxes.tensor[:, :2]).argmin())
        torch.testing.assert_close(centre, boxes.tensor[k, :2], atol=1e-5, rtol=0)
        torch.testing.assert_close(code[2:6], torch.cat([boxes.tensor[k, 2:3], boxes.tensor[k, 3:6].log()]),
                                   atol=1e-5, rtol=0)
        assert abs(int(np.floor((boxes.tensor[k, 0] + 32) / 0.8)) - ix) <= 1
    outs = _outputs_from_targets(head, [targets, head.get_targets(boxes, torch.tensor([0, 0]))[1]])
    assert float(head.loss(outs, [boxes], [torch.tensor([0, 0])])["loss_bbox_0"]) < 1e-5
    assert float(_head().loss(outs, [boxes], [torch.tensor([0, 0])])["loss_bbox_0"]) < 1e-5
    with pytest.raises(ValueError, match="reg_radius"):
        _head(reg_radius=-1)


def test_yaw_symmetry_gives_a_turned_barrier_the_same_target_and_decodes_modulo_its_period():
    tasks = [dict(class_names=["car"]), dict(class_names=["barrier"], yaw_symmetry=2)]
    head = CenterHead(in_channels=8, tasks=tasks, point_cloud_range=PC_RANGE, out_cell=(0.8, 0.8))
    labels = torch.tensor([0, 9])  # car, barrier
    for yaw in (-2.9, -1.0, 0.4, 1.5, 3.0):
        box = torch.tensor([[5.3, -7.9, -0.9, 4.5, 1.9, 1.6, yaw], [-3.1, 12.2, -1.0, 0.5, 2.2, 1.0, yaw]],
                           dtype=torch.float64)
        turned = box.clone()
        turned[:, 6] += np.pi
        targets, targets_turned = head.get_targets(Boxes3D(box), labels), head.get_targets(Boxes3D(turned), labels)
        torch.testing.assert_close(targets[1]["box"][:, 6:8], targets_turned[1]["box"][:, 6:8], atol=1e-6, rtol=0)
        assert (targets[0]["box"][:, 6:8] - targets_turned[0]["box"][:, 6:8]).abs().max() > 0.1  # a car is not
        pred = head.predict(_outputs_from_targets(head, targets))[0]
        decoded = {int(lab): float(b[6]) for lab, b in zip(pred.labels_3d, pred.bboxes_3d.tensor)}
        assert abs(np.angle(np.exp(1j * (decoded[0] - yaw)))) < 1e-5
        assert abs(np.angle(np.exp(2j * (decoded[9] - yaw)))) < 1e-5 and -np.pi / 2 <= decoded[9] <= np.pi / 2
    with pytest.raises(ValueError, match=r"tasks\[1\] yaw_symmetry"):
        CenterHead(in_channels=8, tasks=[tasks[0], dict(class_names=["barrier"], yaw_symmetry=0.5)],
                   point_cloud_range=PC_RANGE, out_cell=(0.8, 0.8))


@pytest.mark.parametrize("num_reg_convs", [1, 2])
def test_head_forward_equals_each_branch_run_on_its_own_with_the_same_gradients(num_reg_convs):
    torch.manual_seed(0)
    head = _head(share_conv_channel=6, head_conv=5, num_reg_convs=num_reg_convs, num_heatmap_convs=2).eval()
    x = torch.randn(2, 8, *head.grid_hw)
    outs = head(x)
    shared = head.shared_conv(x)
    loss, expected = 0.0, 0.0
    for task_out, branches in zip(outs, head.task_heads):
        assert set(task_out) == set(branches)
        for name, branch in branches.items():
            alone = branch(shared)
            assert torch.allclose(task_out[name], alone, atol=1e-5), name
            weight = torch.randn_like(alone)
            loss, expected = loss + (task_out[name] * weight).sum(), expected + (alone * weight).sum()
    params = [p for p in head.parameters()]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    grads_alone = torch.autograd.grad(expected, params, allow_unused=True)
    for p, g, g_alone in zip(params, grads, grads_alone):
        assert g is not None and torch.allclose(g, g_alone, rtol=1e-4, atol=1e-3), p.shape


def test_gaussian_focal_loss_equals_the_formula_per_cell():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 7, 9, generator=g).clamp(0.01, 0.99)
    target = torch.rand(3, 7, 9, generator=g)
    target[0, 2, 3] = target[2, 6, 8] = 1.0
    expected = 0.0
    for p, t in zip(pred.flatten().tolist(), target.flatten().tolist()):
        expected += -np.log(p) * (1 - p) ** 2 if t == 1 else -np.log(1 - p) * p ** 2 * (1 - t) ** 4
    assert float(gaussian_focal_loss(pred, target)) == pytest.approx(expected, rel=1e-5)


def test_pillar_encoder_equals_a_per_pillar_loop():
    torch.manual_seed(0)
    enc = PillarBEVEncoder(in_channels=4, point_cloud_range=[-4, -2, -3, 4, 2, 1], pillar_size=(1.0, 0.5),
                           out_channels=6).eval()
    pts = [torch.cat([torch.rand(50, 3) * torch.tensor([10.0, 5.0, 5.0]) - torch.tensor([5.0, 2.5, 3.5]),
                      torch.rand(50, 1)], 1) for _ in range(2)]
    bev = enc(pts)
    assert bev.shape == (2, 6, 8, 8)
    expected = torch.zeros_like(bev)
    for b, p in enumerate(pts):
        inside = [(p[i, 0] >= -4) & (p[i, 0] < 4) & (p[i, 1] >= -2) & (p[i, 1] < 2) & (p[i, 2] >= -3) & (p[i, 2] < 1)
                  for i in range(len(p))]
        p = p[torch.tensor(inside)]
        cells = {}
        for i in range(len(p)):
            cells.setdefault((int((p[i, 1] + 2) // 0.5), int((p[i, 0] + 4) // 1.0)), []).append(i)
        for (iy, ix), idx in cells.items():
            q = p[idx]
            centre = torch.tensor([-4 + (ix + 0.5) * 1.0, -2 + (iy + 0.5) * 0.5])
            f = torch.cat([q, q[:, :3] - q[:, :3].mean(0), q[:, :2] - centre], 1)
            expected[b, :, iy, ix] = enc.pfn(f).max(0).values
    torch.testing.assert_close(bev, expected, atol=1e-5, rtol=1e-5)


def test_pillar_encoder_time_lag_groups_equal_the_encoder_run_on_each_sweep_alone():
    """Split by the last column (time lag) at 0.25 s: the channels of group g are the one-group encoder (same
    weights) applied to group g's points only, key sweep first."""
    kw = dict(in_channels=5, point_cloud_range=[-4, -2, -3, 4, 2, 1], pillar_size=(1.0, 0.5), out_channels=6)
    grouped = PillarBEVEncoder(time_lag_edges=(0.25,), **kw).eval()
    plain = PillarBEVEncoder(**kw).eval()
    plain.load_state_dict(grouped.state_dict())
    g = torch.Generator().manual_seed(3)
    pts = []
    for n in (60, 45):
        xyz = torch.rand(n, 3, generator=g) * torch.tensor([8.0, 4.0, 4.0]) - torch.tensor([4.0, 2.0, 3.0])
        lag = (torch.rand(n, 1, generator=g) > 0.5).float() * 0.5
        pts.append(torch.cat([xyz, torch.rand(n, 1, generator=g), lag], 1))
    bev = grouped(pts)
    assert grouped.out_channels == 12 and bev.shape == (2, 12, 8, 8)
    key = plain([p[p[:, 4] < 0.25] for p in pts])
    earlier = plain([p[p[:, 4] >= 0.25] for p in pts])
    torch.testing.assert_close(bev, torch.cat([key, earlier], 1), atol=1e-6, rtol=1e-6)
    assert not torch.allclose(key, earlier)


def _rig(h=32, w=48):
    K = np.array([[40.0, 0, w / 2, 0], [0, 40.0, h / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    cam = np.array([[0.0, -1, 0, 0], [0, 0, -1, 0.5], [1, 0, 0, 0], [0, 0, 0, 1]])  # looking along +x
    return torch.from_numpy(K @ cam)[None]


def test_depth_targets_equal_a_loop_over_project_points():
    rng = np.random.default_rng(1)
    pts = np.concatenate([rng.uniform([1, -6, -2], [30, 6, 2], (400, 3)), rng.uniform(0, 1, (400, 1))], 1)
    lidar2img = _rig()
    res = PointsToDepthMaps()(dict(points=pts.astype(np.float32), lidar2img=lidar2img.numpy(), img_hw=(32, 48)))
    lss = LSSTransform(8, 4, depth_bins=(2.0, 20.0, 0.5), grid=dict(x_range=(0, 32), y_range=(-16, 16),
                                                                    z_range=(-5, 3), cell=(1, 1)), stride=8)
    got = lss.depth_targets(torch.from_numpy(res["depth_maps"])[None])[0, 0]
    proj = project_points(torch.from_numpy(pts[:, :3]).float(), lidar2img.float(), (32, 48))
    best = np.full((4, 6), np.inf)
    for i in range(len(pts)):
        if proj.valid[0, i]:
            u, v = proj.uv[0, i].tolist()
            r, c = int(v // 8), int(u // 8)
            best[r, c] = min(best[r, c], float(proj.depth[0, i]))
    bins = np.floor((best - 2.0) / 0.5)
    expected = np.where(np.isfinite(best) & (bins >= 0) & (bins < 36), bins, -1)
    np.testing.assert_array_equal(got.numpy(), expected)
    assert (expected >= 0).sum() > 5


def test_lss_frustum_point_of_a_pixel_and_depth_is_the_lidar_point_seen_there_after_augmentation():
    lidar2img = _rig()
    lss = LSSTransform(8, 4, depth_bins=(2.0, 20.0, 0.5), grid=dict(x_range=(0, 32), y_range=(-16, 16),
                                                                    z_range=(-5, 3), cell=(1, 1)), stride=8)
    aug = np.eye(4)
    aug[:3, :3] = np.array([[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3), np.cos(0.3), 0], [0, 0, 1]]) * 1.05
    aug[1] *= -1
    fr = lss.frustum(lidar2img[None], torch.from_numpy(aug)[None], (4, 6))[0, 0]  # [D, h, w, 3]
    k, i, j = 7, 2, 3
    depth, u, v = 2.0 + 0.5 * k, (j + 0.5) * 8, (i + 0.5) * 8
    point = np.linalg.inv(lidar2img[0].numpy()) @ np.array([u * depth, v * depth, depth, 1.0])
    expected = aug @ point
    np.testing.assert_allclose(fr[k, i, j].numpy(), expected[:3], atol=1e-4)
    proj = project_points(torch.from_numpy(point[None, :3]), lidar2img, (32, 48))
    np.testing.assert_allclose(proj.uv[0, 0].numpy(), [u, v], atol=1e-6)


def test_bev_augment_moves_points_boxes_and_velocities_together():
    rng = np.random.default_rng(2)
    boxes = Boxes3D(np.concatenate([rng.uniform(-20, 20, (6, 3)), rng.uniform(1, 4, (6, 3)),
                                    rng.uniform(-3, 3, (6, 1)), rng.uniform(-5, 5, (6, 2))], 1))
    pts = np.concatenate([rng.uniform(-25, 25, (3000, 3)), rng.uniform(0, 1, (3000, 1))], 1).astype(np.float32)
    before = boxes.points_in_boxes(torch.from_numpy(pts[:, :3]).double())
    aug = BEVAugment(rot_range=(-0.8, 0.8), scale_range=(0.9, 1.1), flip_x_prob=0.5, flip_y_prob=0.5, seed=3)
    seen = set()
    for _ in range(8):
        res = aug(dict(points=pts.copy(), gt_bboxes_3d=boxes))
        mat = res["bev_aug_matrix"]
        seen.add((np.sign(np.linalg.det(mat[:2, :2])), ))
        after = res["gt_bboxes_3d"].points_in_boxes(torch.from_numpy(res["points"][:, :3]).double())
        assert torch.equal(before, after)
        np.testing.assert_allclose(res["points"][:, :3], pts[:, :3] @ mat[:3, :3].T, atol=1e-4)
        vel = boxes.velocity.numpy() @ mat[:2, :2].T
        np.testing.assert_allclose(res["gt_bboxes_3d"].velocity.numpy(), vel, atol=1e-9)
        # the box's front corners stay its front corners (yaw follows the mirror)
        front = boxes.corners()[:, :4].numpy() @ mat[:3, :3].T
        np.testing.assert_allclose(np.sort(res["gt_bboxes_3d"].corners()[:, :4].numpy(), 1), np.sort(front, 1),
                                   atol=1e-6)
    assert len(seen) == 2  # both mirrored and proper draws happened


@pytest.fixture(scope="module")
def driving_root(tmp_path_factory):
    from pc_kd.datasets.synthetic import write_driving_dataset

    root = tmp_path_factory.mktemp("synthetic_driving")
    write_driving_dataset(root, "train", num_samples=2, seed=4, image_hw=(48, 96), num_objects=12, num_sweeps=1)
    return root


def _driving(root, pipeline):
    from pc_kd.datasets import SyntheticDrivingDataset

    return SyntheticDrivingDataset(data_root=str(root), num_samples=2, seed=4, image_hw=(48, 96), num_objects=12,
                                   num_sweeps=1, pipeline=pipeline)


def test_multi_view_images_resized_and_cropped_keep_the_projection(driving_root):
    ds = _driving(driving_root, [dict(type="LoadPointsFromFile", load_dim=5, use_dim=(0, 1, 2, 3))])
    res = ds.prepare_data(0)
    full = LoadMultiViewImages()(dict(res))
    small = LoadMultiViewImages(final_hw=(16, 64))(dict(res))
    assert full["imgs"].shape == (6, 3, 48, 96) and small["imgs"].shape == (6, 3, 16, 64)
    assert full["cam_names"] == list(res["cameras"].names)
    xyz = torch.from_numpy(res["points"][:, :3]).double()
    a = project_points(xyz, torch.from_numpy(full["lidar2img"]), (48, 96))
    b = project_points(xyz, torch.from_numpy(small["lidar2img"]), (16, 64))
    scale = 64 / 96
    front = (a.depth > 1e-3).numpy()
    assert front.sum() > 1000
    np.testing.assert_allclose(b.uv.numpy()[front], a.uv.numpy()[front] * scale - np.array([0, 48 * scale - 16]),
                               atol=1e-6)
    # pixel content follows: the bottom rows of the resized image are the cropped image's
    from PIL import Image
    img = Image.open(res["img_paths"][0]).convert("RGB").resize((64, 32), Image.BILINEAR)
    np.testing.assert_allclose(small["imgs"][0], np.asarray(img, np.float32)[16:].transpose(2, 0, 1) / 255, atol=1e-6)


def test_sweeps_carry_a_time_lag_and_show_moving_objects_where_they_were(driving_root):
    from pc_kd.datasets.synthetic.driving import SWEEP_DT

    pipe = [dict(type="LoadPointsFromFile", load_dim=5, use_dim=(0, 1, 2, 3)),
            dict(type="LoadPointsFromMultiSweeps", sweeps_num=1, load_dim=5, use_dim=(0, 1, 2, 3)),
            dict(type="LoadAnnotations3D", with_seg=False, with_bbox_3d=True, with_velocity=True)]
    ds = _driving(driving_root, pipe)
    for idx in range(2):
        res = ds.prepare_data(idx)
        pts, boxes = res["points"], res["gt_bboxes_3d"]
        assert set(np.unique(pts[:, 4]).tolist()) == {0.0, SWEEP_DT}
        earlier = boxes.tensor.clone()
        earlier[:, :2] -= boxes.velocity * SWEEP_DT  # where each object was one sweep ago
        grown = earlier.clone()
        grown[:, 3:6] += 0.1
        above_ground = pts[:, 2] > -1.84 + 0.1  # the LiDAR is 1.84 m above the ground
        inside, now = [], []
        for sel in (pts[:, 4] > 0) & above_ground, (pts[:, 4] == 0) & above_ground:
            xyz = torch.from_numpy(pts[sel, :3]).double()
            inside.append(Boxes3D(grown).points_in_boxes(xyz))
            grown_now = boxes.tensor.clone()
            grown_now[:, 3:6] += 0.1
            now.append(Boxes3D(grown_now).points_in_boxes(xyz))
        moving = (boxes.velocity.norm(dim=1) * SWEEP_DT > 1.0).nonzero().flatten().tolist()
        assert moving
        for k in moving:
            # the earlier sweep saw object k where it was, the key frame sees it where it is
            assert (inside[0] == k).sum() >= 3 and ((now[0] == k) & (inside[0] != k)).sum() == 0
            assert (now[1] == k).sum() >= 3 and ((inside[1] == k) & (now[1] != k)).sum() == 0
            assert ((now[1] == k) & (inside[1] != k)).sum() > 0


def test_bad_detection_input_is_named(tmp_path, driving_root):
    with pytest.raises(ValueError, match=r"tasks\[1\].*'bicycle'"):
        CenterHead(in_channels=8, tasks=[dict(class_names=["car"]), dict(class_names=["bicycle"])],
                   point_cloud_range=PC_RANGE, out_cell=(0.8, 0.8), class_names=["car", "truck"])
    ds = _driving(driving_root, [])
    res = ds.prepare_data(0)
    with pytest.raises(ValueError, match=r"synth04000.*CAM_BACK_LEFT.*expects"):
        LoadMultiViewImages(cam_names=["CAM_FRONT", "CAM_BACK"])(dict(res))
    from pc_kd.models.backbones import CameraBEVEncoder

    enc = CameraBEVEncoder(dict(type="ImageEncoder", widths=(8, 8, 8), out_channels=8),
                           dict(type="LSSTransform", out_channels=4, depth_bins=(2, 10, 1),
                                grid=dict(x_range=(-8, 8), y_range=(-8, 8), z_range=(-3, 3), cell=(1, 1))))
    with pytest.raises(ValueError, match=r"44x96 is not divisible.*stride 8"):
        enc(torch.zeros(1, 2, 3, 44, 96), torch.eye(4).expand(1, 2, 4, 4), torch.eye(4)[None])
    from pc_kd.datasets.transforms import PackDetInputs

    bad = dict(points=np.zeros((3, 4), np.float32), token="tok7", gt_labels_3d=np.array([0, 0]),
               gt_bboxes_3d=Boxes3D(np.array([[0, 0, 0, 1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 0, 1, 0, 0, 0]])))
    with pytest.raises(ValueError, match=r"tok7: gt_bboxes_3d\[1\] has a size"):
        PackDetInputs()(bad)
    bad["gt_bboxes_3d"] = Boxes3D(np.array([[0, 0, 0, 1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 2, 1, 0, np.inf, 0]]))
    with pytest.raises(ValueError, match=r"tok7: gt_bboxes_3d\[1\] has NaN / inf"):
        PackDetInputs()(bad)
    # a NaN velocity is an annotation without a neighbour in time: kept as NaN, not refused, not zeroed
    bad["gt_bboxes_3d"] = Boxes3D(np.array([[0, 0, 0, 1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 2, 1, 0, np.nan, np.nan]]))
    packed = PackDetInputs()(bad)["data_samples"].gt_instances_3d.bboxes_3d.tensor
    assert torch.isnan(packed[1, 7:]).all() and torch.isfinite(packed[0]).all()


def test_info_files_of_another_box_version_are_refused(tmp_path, driving_root):
    import pickle
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(driving_root, root)
    info = root / "synthetic_driving_infos_train.pkl"
    data = pickle.loads(info.read_bytes())
    data["metainfo"]["info_version"] = "1.0"
    info.write_bytes(pickle.dumps(data))
    from pc_kd.datasets import NuScenesDataset

    with pytest.raises(ValueError, match=r"info_version is '1.0'.*geometric centre"):
        NuScenesDataset(ann_file=str(info), data_root=str(root), image_hw=(48, 96))
    data["metainfo"]["info_version"] = "1.1"
    data["data_list"][0]["instances"][2]["bbox_3d"][4] = -1.0
    info.write_bytes(pickle.dumps(data))
    ds = NuScenesDataset(ann_file=str(info), data_root=str(root), image_hw=(48, 96), pipeline=[
        dict(type="LoadAnnotations3D", with_seg=False, with_bbox_3d=True)])
    with pytest.raises(ValueError, match=r"synth04000.*negative box size"):
        ds.prepare_data(0)


def test_sparse_encoder_puts_a_lone_voxel_in_its_bev_cell_with_the_height_folded_into_channels():
    from pc_kd.models.backbones import SparseEncoder8x

    torch.manual_seed(0)
    enc = SparseEncoder8x(4, point_cloud_range=[-6.4, -6.4, -3.0, 6.4, 6.4, 1.0], voxel_size=(0.1, 0.1, 0.2),
                          channels=(4, 4, 4, 8)).eval()
    assert (enc.grid_xyz, enc.z_levels, enc.out_channels) == ([128, 128, 20], 1, 8)
    pts = torch.tensor([[2.35, -4.05, -1.1, 1.0]]).repeat(5, 1)
    bev = enc([pts, torch.zeros(0, 4)])
    assert bev.shape == (2, 8, 16, 16)
    active = bev[0].abs().sum(0)
    iy, ix = int((-4.05 + 6.4) // 0.8), int((2.35 + 6.4) // 0.8)
    assert active[iy, ix] > 0 and active.nonzero().sub(torch.tensor([iy, ix])).abs().max() <= 1
    assert bev[1].abs().sum() == 0


def test_converted_sweeps_bring_a_static_point_back_to_its_key_frame_position(tmp_path):
    """nuScenes sweeps (lidar2sensor through each sweep's own ego pose) and LoadPointsFromMultiSweeps: a static
    point in the world, written into each sweep's LiDAR frame, loads at its key-frame LiDAR coordinates."""
    from pyquaternion import Quaternion

    from pc_kd.datasets.converters.nuscenes import lidar_sweeps, pose_matrix
    from pc_kd.datasets.transforms import LoadPointsFromMultiSweeps

    rng = np.random.default_rng(3)
    rows = {"sample_data": {}, "calibrated_sensor": {}, "ego_pose": {}}
    calib = dict(token="calib", rotation=list(Quaternion(axis=[0, 0, 1], angle=-1.55)), translation=[0.9, 0.0, 1.8])
    rows["calibrated_sensor"]["calib"] = calib
    prev = ""
    for k in range(4):  # sd0 is the previous key frame, sd1..sd3 sweeps; the key frame is sd3's successor
        token = f"sd{k}"
        rows["ego_pose"][token] = dict(rotation=list(Quaternion(axis=[0.05, 0.02, 1], angle=0.1 * k + 0.3)),
                                       translation=[400.0 + 2.5 * k, 800.0 + 1.1 * k, 0.1 * k])
        rows["sample_data"][token] = dict(token=token, prev=prev, is_key_frame=k == 0, filename=f"sweeps/LIDAR_TOP/{token}.bin",
                                          calibrated_sensor_token="calib", ego_pose_token=token, timestamp=1e6 * (10 + 0.05 * k))
        prev = token
    rows["ego_pose"]["key"] = dict(rotation=list(Quaternion(axis=[0, 0, 1], angle=0.45)), translation=[410.0, 804.0, 0.4])
    key_sd = dict(token="key", prev=prev, is_key_frame=True, filename="samples/LIDAR_TOP/key.bin",
                  calibrated_sensor_token="calib", ego_pose_token="key", timestamp=1e6 * 10.2)
    rows["sample_data"]["key"] = key_sd

    class Tables:
        def get(self, table, token):
            return rows[table][token]

    lidar2global = pose_matrix(rows["ego_pose"]["key"]) @ pose_matrix(calib)
    sweeps = lidar_sweeps(Tables(), key_sd, lidar2global, max_sweeps=10)
    assert [s["sample_data_token"] for s in sweeps] == ["sd3", "sd2", "sd1"]  # stops at the previous key frame
    world = np.concatenate([rng.uniform([390, 790, 0], [420, 820, 3], (50, 3)), np.ones((50, 1))], 1)
    for s in sweeps:  # the sensor files: the world points in each sweep's LiDAR frame (+ intensity, ring)
        sweep2global = pose_matrix(rows["ego_pose"][s["sample_data_token"]]) @ pose_matrix(calib)
        local = (np.linalg.inv(sweep2global) @ world.T).T[:, :3]
        path = tmp_path / s["lidar_points"]["lidar_path"]
        np.concatenate([local, np.ones((50, 2))], 1).astype(np.float32).tofile(path)
        s["lidar_points"]["lidar_path"] = str(path)
    key_local = (np.linalg.inv(lidar2global) @ world.T).T[:, :3]
    res = LoadPointsFromMultiSweeps(sweeps_num=3, load_dim=5, use_dim=(0, 1, 2, 3), min_range=0.0)(dict(
        points=np.concatenate([key_local, np.ones((50, 1))], 1).astype(np.float32), timestamp=10.2,
        lidar_sweeps=sweeps))
    pts = res["points"]
    assert pts.shape == (200, 5)
    for k in range(4):
        np.testing.assert_allclose(pts[50 * k:50 * (k + 1), :3], key_local, atol=2e-3)
    np.testing.assert_allclose(np.unique(pts[:, 4]), [0.0, 0.05, 0.1, 0.15], atol=1e-5)


def test_bn_momentum_reaches_every_batchnorm_of_the_detector():
    from pathlib import Path

    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from pc_kd.registry import MODELS

    root = Path(__file__).resolve().parents[1] / "configs" / "supervised"
    cfg = Config.fromfile(root / "supervised_bevfusion_none_synthetic-driving.py")
    init_default_scope("pc_kd")
    model_cfg = cfg.model.to_dict()
    assert model_cfg["bn_momentum"] == 0.1
    norms = lambda m: [x for x in m.modules() if isinstance(x, torch.nn.modules.batchnorm._BatchNorm)]  # noqa: E731
    tuned = MODELS.build(model_cfg)
    assert len(norms(tuned)) > 20 and {n.momentum for n in norms(tuned)} == {0.1}
    model_cfg.pop("bn_momentum")
    assert {n.momentum for n in norms(MODELS.build(model_cfg).backbone)} == {0.01}  # mmdet3d's, when not given


def test_fewer_sweeps_than_requested_is_logged_once(tmp_path):
    import logging

    from mmengine.logging import MMLogger

    from pc_kd.datasets.transforms import LoadPointsFromMultiSweeps

    logged = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: logged.append(record.getMessage())
    MMLogger.get_instance("pc_kd_test_sweeps").addHandler(handler)
    load = LoadPointsFromMultiSweeps(sweeps_num=9, load_dim=5, use_dim=(0, 1, 2, 3))
    for token in ("first", "second"):
        res = load(dict(points=np.ones((5, 4), np.float32), timestamp=1.0, lidar_sweeps=[], token=token))
        assert res["points"].shape == (5, 5)  # the key frame alone, time lag 0
    assert len(logged) == 1 and "sample first has 0 earlier LiDAR sweeps of the 9 requested" in logged[0], logged
