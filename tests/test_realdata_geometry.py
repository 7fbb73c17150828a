"""Geometry on the real samples: nuScenes projection and boxes, ScanNet frame colours vs vertex colours."""
import numpy as np
import pytest
import torch
from PIL import Image

from pc_kd.datasets import NuScenesDataset
from pc_kd.projection import project_points, zbuffer_visibility
from pc_kd.structures import Boxes3D, CameraRig
from pc_kd.utils.io import read_bin, read_matrix_txt

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def nusc(real_data):
    ds = NuScenesDataset(ann_file="mmdet3d_infos_v1.1.pkl", data_root=str(real_data / "nuscenes_demo"),
                         pipeline=[dict(type="LoadPointsFromFile", load_dim=5, use_dim=(0, 1, 2, 3, 4)),
                                   dict(type="LoadAnnotations3D", with_seg=False, with_bbox_3d=True,
                                        with_velocity=True)])
    return ds, ds.get_data_info(0), ds.prepare_data(0)


def test_nuscenes_points_inside_cam_front(nusc):
    _, info, results = nusc
    rig: CameraRig = info["cameras"]
    uv, depth, inside = rig.project(results["points"][:, :3].astype(np.float64))
    front = rig.names.index("CAM_FRONT")
    assert inside[front].sum() == 3067
    assert 4.4 < depth[front][inside[front]].min() and depth[front][inside[front]].max() < 99
    assert abs(inside.any(0).mean() - 0.583) < 0.001


def test_nuscenes_projection_matches_devkit_view_points(nusc):
    from nuscenes.utils.geometry_utils import view_points

    _, info, results = nusc
    rig: CameraRig = info["cameras"]
    pts = results["points"][:, :3].astype(np.float64)
    uv, depth, inside = rig.project(pts)
    for v in range(rig.num_views):
        cam = (rig.lidar2cam[v] @ np.c_[pts, np.ones(len(pts))].T)[:3]
        front = cam[2] > 1e-5
        ref = view_points(cam[:, front], rig.intrinsics[v][:3, :3], normalize=True)[:2].T
        np.testing.assert_allclose(uv[v][front], ref, atol=1e-3)


def test_boxes_corners_equal_devkit_box_corners(nusc):
    from nuscenes.utils.data_classes import Box
    from pyquaternion import Quaternion

    _, _, results = nusc
    boxes: Boxes3D = results["gt_bboxes_3d"]
    assert len(boxes) == 68  # 69 instances, one outside the 10 classes (label -1)
    corners = boxes.corners().numpy()
    for i, (x, y, z, l, w, h, yaw) in enumerate(boxes.tensor[:, :7].tolist()):
        ref = Box([x, y, z], [w, l, h], Quaternion(axis=[0, 0, 1], angle=yaw)).corners().T
        np.testing.assert_allclose(corners[i], ref, atol=1e-9)
        np.testing.assert_allclose(boxes.bev_corners()[i].numpy(), ref[[0, 4, 5, 1], :2], atol=1e-9)


def test_boxes_follow_lidar_to_global_like_devkit(nusc):
    from nuscenes.utils.data_classes import Box
    from pyquaternion import Quaternion

    _, info, results = nusc
    boxes: Boxes3D = results["gt_bboxes_3d"]
    lidar2global = info["ego2global"] @ info["lidar2ego"]
    moved = boxes.transform(lidar2global)
    for i, (x, y, z, l, w, h, yaw) in enumerate(boxes.tensor[:, :7].tolist()):
        ref = Box([x, y, z], [w, l, h], Quaternion(axis=[0, 0, 1], angle=yaw))
        ref.rotate(Quaternion(matrix=lidar2global[:3, :3], atol=1e-6))
        ref.translate(lidar2global[:3, 3])
        np.testing.assert_allclose(moved.center[i].numpy(), ref.center, atol=1e-6)
        dyaw = (moved.yaw[i].item() - ref.orientation.yaw_pitch_roll[0] + np.pi) % (2 * np.pi) - np.pi
        assert abs(dyaw) < 0.01  # LiDAR->ego tilt (~1.4 deg) is dropped by yaw-only boxes


def test_box_centres_map_to_stored_camera_boxes(nusc, real_data):
    import pickle

    _, info, results = nusc
    raw = pickle.load(open(real_data / "nuscenes_demo" / "mmdet3d_infos_v1.1.pkl", "rb"))["data_list"][0]
    lidar_boxes = np.array([inst["bbox_3d"] for inst in raw["instances"]])
    for v, name in enumerate(info["cameras"].names):
        cam_centres = np.array([inst["bbox_3d"][:3] for inst in raw["cam_instances"][name]]).reshape(-1, 3)
        mapped = (info["cameras"].lidar2cam[v] @ np.c_[lidar_boxes[:, :3], np.ones(len(lidar_boxes))].T)[:3].T
        for c in cam_centres:  # every stored camera box is one of the LiDAR boxes, mapped by lidar2cam
            assert np.linalg.norm(mapped - c, axis=1).min() < 1e-5


@pytest.fixture(scope="module")
def scannet_scene(real_data):
    root = real_data / "scannet_scene0000_00"
    verts = read_bin(root / "scene0000_00_vert_unaligned.bin", np.float32, 6)
    K = read_matrix_txt(root / "posed_images" / "intrinsic.txt")
    return root, verts, K


def _frame_vertex_colour_correlation(verts, K, pose, image):
    h, w = image.shape[:2]
    lidar2img = torch.from_numpy(K @ np.linalg.inv(pose))[None]
    pts = torch.from_numpy(verts[:, :3].astype(np.float64))
    visible = zbuffer_visibility(pts, lidar2img, (h, w), radius_px=4, depth_tol=0.05)[0]
    uv = project_points(pts, lidar2img, (h, w)).uv[0][visible].floor().long().numpy()
    img_rgb = image[uv[:, 1], uv[:, 0]].astype(np.float64).ravel()
    vert_rgb = verts[visible.numpy(), 3:6].astype(np.float64).ravel()
    return np.corrcoef(img_rgb, vert_rgb)[0, 1], int(visible.sum())


def _backprojected_colour_correlation(verts, K, pose, image):
    from pc_kd.projection import backproject_features

    h, w = image.shape[:2]
    lidar2img = torch.from_numpy(K @ np.linalg.inv(pose))[None]
    feats = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]  # the RGB image as a 3-channel map
    out, count = backproject_features(torch.from_numpy(verts[:, :3].astype(np.float64)), feats, lidar2img, (h, w),
                                      visibility="zbuffer", zbuffer_radius=4, depth_tol=0.05)
    seen = (count > 0).numpy()
    return np.corrcoef(out.numpy()[seen].ravel(), verts[seen, 3:6].ravel())[0, 1], int(seen.sum())


@pytest.mark.parametrize("frame", ["00000", "00011"])
@pytest.mark.parametrize("correlation", [_frame_vertex_colour_correlation, _backprojected_colour_correlation],
                         ids=["zbuffer-sampling", "backproject_features"])
def test_scannet_frame_colours_match_vertex_colours(scannet_scene, frame, correlation):
    """A frame's colours at the vertices it sees correlate with the vertex colours; not after a 20 degree turn."""
    root, verts, K = scannet_scene
    pose = read_matrix_txt(root / "posed_images" / f"{frame}.txt")
    image = np.asarray(Image.open(root / "posed_images" / f"{frame}.jpg").convert("RGB"))
    r, n = correlation(verts, K, pose, image)
    assert n > 3000 and r >= 0.5
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    turn = np.eye(4)
    turn[:3, :3] = [[c, 0, s], [0, 1, 0], [-s, 0, c]]  # 20 degrees about the camera's y axis
    assert correlation(verts, K, pose @ turn, image)[0] < 0.25
