"""Cameras, point batches, boxes, projection and z-buffer against naive per-point loops."""
import numpy as np
import pytest
import torch

from pc_kd.projection import project_points, splat_zbuffer, zbuffer_visibility
from pc_kd.projection.zbuffer import _splat_torch
from pc_kd.structures import Boxes3D, CameraRig, PointBatch


def _random_rig(num_views, seed):
    rng = np.random.default_rng(seed)
    K = np.array([[300.0, 0, 80], [0, 310.0, 60], [0, 0, 1]])
    poses = []
    for _ in range(num_views):
        a = rng.uniform(-np.pi, np.pi)
        pose = np.eye(4)
        pose[:3, :3] = np.array([[np.sin(a), 0, np.cos(a)], [-np.cos(a), 0, np.sin(a)], [0, -1, 0]])
        pose[:3, 3] = rng.normal(0, 0.5, 3)
        poses.append(pose)
    return CameraRig.from_poses(K, poses, (120, 160))


def test_lidar2img_is_intrinsics_times_extrinsics():
    rig = _random_rig(3, 0)
    for v in range(3):
        ref = np.eye(4)
        ref[:3, :4] = rig.intrinsics[v][:3, :3] @ rig.lidar2cam[v][:3, :4]
        np.testing.assert_allclose(rig.lidar2img[v], ref, atol=1e-12)
    np.testing.assert_allclose(rig.cam2lidar @ rig.lidar2cam, np.broadcast_to(np.eye(4), (3, 4, 4)), atol=1e-12)


@pytest.mark.parametrize("n", [0, 1, 37])
def test_project_points_matches_a_per_point_loop(n):
    rig = _random_rig(3, 1)
    pts = np.random.default_rng(n).normal(0, 3, (n, 3))
    proj = project_points(torch.from_numpy(pts), torch.from_numpy(rig.lidar2img), rig.image_hw)
    assert proj.uv.shape == (3, n, 2) and proj.valid.shape == (3, n)
    h, w = rig.image_hw
    for v in range(3):
        for i in range(n):
            cam = rig.lidar2cam[v] @ np.r_[pts[i], 1.0]
            u, vv = (rig.intrinsics[v][:3, :3] @ cam[:3])[:2] / cam[2]
            assert proj.depth[v, i].item() == pytest.approx(cam[2])
            inside = cam[2] > 1e-5 and 0 <= u < w and 0 <= vv < h
            assert bool(proj.valid[v, i]) == inside
            if cam[2] > 1e-5:
                np.testing.assert_allclose(proj.uv[v, i].numpy(), [u, vv], rtol=1e-9, atol=1e-9)


def test_points_behind_every_camera_are_invalid():
    rig = _random_rig(2, 2)
    behind = (rig.cam2lidar[:, :3, :3] @ np.array([0.1, 0.1, -2.0]) + rig.cam2lidar[:, :3, 3])
    proj = project_points(torch.from_numpy(behind), torch.from_numpy(rig.lidar2img), rig.image_hw)
    assert not proj.valid.any()


def _naive_zbuffer(uv, depth, hw, radius):
    h, w = hw
    zbuf = np.full((h, w), np.inf)
    index = np.full((h, w), -1)
    for i in range(len(depth)):
        if depth[i] <= 0:
            continue
        px, py = int(np.floor(uv[i, 0])), int(np.floor(uv[i, 1]))
        for y in range(py - radius[i], py + radius[i] + 1):
            for x in range(px - radius[i], px + radius[i] + 1):
                if 0 <= x < w and 0 <= y < h and (depth[i] < zbuf[y, x] or (depth[i] == zbuf[y, x] and i > index[y, x])):
                    zbuf[y, x], index[y, x] = depth[i], i
    return zbuf, index


@pytest.mark.parametrize("impl", ["numba", "torch"])
@pytest.mark.parametrize("n", [0, 1, 200])
def test_splat_zbuffer_matches_a_per_point_loop(n, impl):
    rng = np.random.default_rng(n)
    uv = rng.uniform(-3, 20, (n, 2))
    if n:
        uv[0] = [1e12, -1e12]  # far outside: no pixel, no overflow
    depth = np.round(rng.uniform(-1, 5, n), 1)  # ties and points behind the camera included
    radius = rng.integers(0, 3, n)
    args = (torch.from_numpy(uv), torch.from_numpy(depth), (13, 17), torch.from_numpy(radius))
    zb = splat_zbuffer(*args) if impl == "numba" else _splat_torch(args[0], args[1], args[1] > 0, args[3], 13, 17)
    ref_z, ref_i = _naive_zbuffer(uv, depth, (13, 17), radius)
    np.testing.assert_array_equal(zb.depth.numpy(), ref_z)
    np.testing.assert_array_equal(zb.index.numpy(), ref_i)


def test_zbuffer_visibility_hides_the_back_of_two_points():
    lidar2img = torch.eye(4, dtype=torch.float64)[None]
    lidar2img[0, 0, 0] = lidar2img[0, 1, 1] = 10.0
    pts = torch.tensor([[0.05, 0.05, 1.0], [0.05, 0.05, 2.0], [0.25, 0.05, 2.0], [0.05, 0.05, 1.02]],
                       dtype=torch.float64)
    vis = zbuffer_visibility(pts, lidar2img, (4, 4), radius_px=0, depth_tol=0.05)[0]
    assert vis.tolist() == [True, False, True, True]


@pytest.mark.parametrize("radius", [0, 1, 2])
def test_zbuffer_visibility_matches_a_per_pixel_oracle_in_a_furnished_room(radius):
    """Every pixel of a 30 x 40 view of a synthetic room: the nearest depth among the points whose splat
    covers it, found by scanning all points; a point is visible where it is within 5 % of its pixel's."""
    from pc_kd.datasets.synthetic.indoor import look_at, make_indoor_scene

    scene = make_indoor_scene(4, num_points=4000)
    lx, ly, _ = scene.room_size
    pose = look_at(np.array([0.5, 0.5, 1.5]), np.array([lx - 0.5, ly - 0.5, 0.6]))
    K = np.diag([35.0, 35.0, 1.0, 1.0])
    K[0, 2], K[1, 2] = 20.0, 15.0
    lidar2img = torch.from_numpy(K @ np.linalg.inv(pose))[None]
    points = torch.from_numpy(scene.points[:, :3].astype(np.float64))
    visible = zbuffer_visibility(points, lidar2img, (30, 40), radius_px=radius, depth_tol=0.05)[0].numpy()
    proj = project_points(points, lidar2img, (30, 40))
    uv, depth, valid = proj.uv[0].numpy(), proj.depth[0].numpy(), proj.valid[0].numpy()
    px, py = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    nearest = np.full((30, 40), np.inf)
    for y in range(30):
        for x in range(40):
            covering = valid & (np.abs(px - x) <= radius) & (np.abs(py - y) <= radius)
            if covering.any():
                nearest[y, x] = depth[covering].min()
    expected = np.zeros(len(points), bool)
    expected[valid] = depth[valid] <= nearest[py[valid], px[valid]] * 1.05
    np.testing.assert_array_equal(visible, expected)
    assert 0.1 < 1 - expected[valid].mean() < 0.9  # furniture and walls hide a real share of the points


def test_camera_rig_rejects_bad_calibration():
    with pytest.raises(ValueError, match=r"lidar2cam\[0\].*4x4"):
        CameraRig(np.eye(3)[None], np.eye(3)[None], (10, 10))
    singular = np.eye(4)
    singular[2, 2] = 0
    with pytest.raises(ValueError, match="singular"):
        CameraRig(np.eye(3)[None], singular[None], (10, 10))
    nan = np.eye(4)
    nan[0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        CameraRig(np.eye(3)[None], nan[None], (10, 10))


def test_point_batch_offsets_and_split():
    a, b = torch.rand(5, 3), torch.rand(2, 3)
    batch = PointBatch.from_list([a, b], [torch.ones(5, 1), torch.zeros(2, 1)])
    assert batch.offset.tolist() == [5, 7]
    assert batch.batch_index.tolist() == [0] * 5 + [1] * 2
    parts = batch.split(batch.coord)
    assert torch.equal(parts[0], a) and torch.equal(parts[1], b)
    with pytest.raises(ValueError, match="offset"):
        PointBatch(batch.coord, batch.feat, torch.tensor([5, 6]))


def test_boxes_corners_points_in_boxes_and_transform():
    boxes = Boxes3D([[1.0, 2.0, 0.5, 4.0, 2.0, 1.0, np.pi / 2, 3.0, 0.0]])
    corners = boxes.corners()[0]
    # yaw 90 degrees: length along +y, width along x
    assert corners[:, 1].max().item() == pytest.approx(4.0) and corners[:, 0].max().item() == pytest.approx(2.0)
    inside = boxes.points_in_boxes(torch.tensor([[1.0, 3.9, 0.5], [1.9, 2.0, 0.9], [2.1, 2.0, 0.5]]))
    assert inside.tolist() == [0, 0, -1]
    turn = np.eye(4)
    turn[:2, :2] = [[0, -1], [1, 0]]
    turn[:3, 3] = [10, 0, 0]
    moved = boxes.transform(turn)
    np.testing.assert_allclose(moved.center[0].numpy(), [8.0, 1.0, 0.5], atol=1e-12)
    assert moved.yaw.item() == pytest.approx(np.pi) or moved.yaw.item() == pytest.approx(-np.pi)
    np.testing.assert_allclose(moved.velocity[0].numpy(), [0.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(np.sort(moved.corners()[0].numpy(), 0),
                               np.sort(boxes.corners()[0].numpy() @ turn[:3, :3].T + turn[:3, 3], 0), atol=1e-12)
    assert len(Boxes3D(np.zeros((0, 7)))) == 0
    with pytest.raises(ValueError, match=r"\[N, 7\]"):
        Boxes3D(np.zeros((2, 6)))
