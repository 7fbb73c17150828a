"""Synthetic scenes: seeded, consistent between points, images and boxes, readable by the real loaders."""
import re

import numpy as np
import pytest
import torch
from PIL import Image

from pc_kd.datasets import ScanNetDataset, SyntheticDrivingDataset, SyntheticIndoorDataset
from pc_kd.datasets.synthetic import INDOOR_CLASSES, make_indoor_scene
from pc_kd.datasets.synthetic.driving import PAINTS, make_driving_scene, simulate_lidar
from pc_kd.projection import project_points, zbuffer_visibility
from pc_kd.structures import Boxes3D

INDOOR_PIPELINE = [dict(type="LoadPointsFromFile", load_dim=6), dict(type="LoadAnnotations3D",
                                                                     with_instance_mask=True, with_bbox_3d=True)]


def test_indoor_scene_is_seeded_and_has_all_classes():
    a, b, c = make_indoor_scene(5, num_points=4000), make_indoor_scene(5, num_points=4000), make_indoor_scene(6)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points[:100], c.points[:100])
    present = set(np.unique(c.semantic))
    assert {0, 1, 2} <= present and len(present - {0, 1, 2}) >= 6  # floor, wall, ceiling + >= 6 furniture
    assert len(c.boxes) >= 6
    inside = Boxes3D(np.c_[c.boxes[:, :3], c.boxes[:, 3:6] + 0.02, c.boxes[:, 6]]).points_in_boxes(
        torch.from_numpy(c.points[:, :3].astype(np.float64)))
    furniture = c.instance > 0
    # every furniture point lies in its own instance's box
    assert (inside[torch.from_numpy(furniture)].numpy() == c.instance[furniture] - 1).mean() > 0.99


def test_synthetic_indoor_files_read_by_the_scannet_loader(synthetic_indoor_root):
    ds = ScanNetDataset(ann_file="synthetic_indoor_infos_train.pkl", data_root=str(synthetic_indoor_root),
                        metainfo=dict(classes=INDOOR_CLASSES, seg_raw_ids=tuple(range(len(INDOOR_CLASSES)))),
                        pipeline=INDOOR_PIPELINE)
    assert len(ds) == 2
    out = ds.prepare_data(0)
    assert out["points"].shape == (6000, 6)
    assert set(np.unique(out["pts_semantic_mask"])) <= set(range(len(INDOOR_CLASSES)))
    assert len(ds.get_data_info(0)["images"]) == 2


def _frame(info, v):
    img = info["images"][v]
    rgb = np.asarray(Image.open(img["img_path"]).convert("RGB"))
    depth = np.asarray(Image.open(img["img_path"].replace(".jpg", "_depth.png"))).astype(np.float64) / 1000
    label = np.asarray(Image.open(img["img_path"].replace(".jpg", "_label.png")))
    lidar2img = np.array(img["cam2img"]) @ np.linalg.inv(np.array(img["cam2world"]))
    return rgb, depth, label, torch.from_numpy(lidar2img)[None]


def test_rendered_depth_label_and_colour_agree_with_the_cloud(synthetic_indoor_root):
    ds = ScanNetDataset(ann_file="synthetic_indoor_infos_train.pkl", data_root=str(synthetic_indoor_root),
                        metainfo=dict(classes=INDOOR_CLASSES, seg_raw_ids=tuple(range(len(INDOOR_CLASSES)))),
                        pipeline=INDOOR_PIPELINE)
    out, info = ds.prepare_data(1), ds.get_data_info(1)
    pts = torch.from_numpy(out["points"][:, :3].astype(np.float64))
    for v in range(2):
        rgb, depth, label, lidar2img = _frame(info, v)
        assert (label != 255).mean() > 0.98  # a closed room: every pixel but splat holes (1.5 % at 120 x 160)
        visible = zbuffer_visibility(pts, lidar2img, depth.shape, radius_px=3, depth_tol=0.05)[0]
        proj = project_points(pts, lidar2img, depth.shape)
        uv = proj.uv[0][visible].floor().long().numpy()
        d_img = depth[uv[:, 1], uv[:, 0]]
        d_pts = proj.depth[0][visible].numpy()
        assert np.median(np.abs(d_img - d_pts) / d_pts) < 0.01
        assert (label[uv[:, 1], uv[:, 0]] == out["pts_semantic_mask"][visible.numpy()]).mean() > 0.85
        r = np.corrcoef(rgb[uv[:, 1], uv[:, 0]].ravel().astype(float),
                        out["points"][visible.numpy(), 3:].ravel().astype(float))[0, 1]
        assert r > 0.8


def test_synthetic_indoor_dataset_refuses_other_parameters(tmp_path):
    SyntheticIndoorDataset(data_root=str(tmp_path), num_scenes=1, num_views=1, image_hw=(30, 40), num_points=500)
    with pytest.raises(ValueError, match="made with") as err:
        SyntheticIndoorDataset(data_root=str(tmp_path), num_scenes=1, num_views=2, image_hw=(30, 40),
                               num_points=500)
    # what differs, and the two ways out: a folder of its own (which then works) or deleting this one
    assert "num_views=1 there, 2 asked" in str(err.value) and f"delete {tmp_path}" in str(err.value)
    own = re.search(r"data_root='([^']+)'", str(err.value)).group(1)
    SyntheticIndoorDataset(data_root=own, num_scenes=1, num_views=2, image_hw=(30, 40), num_points=500)


def test_driving_lidar_hits_lie_in_their_boxes():
    scene = make_driving_scene(2)
    points, target = simulate_lidar(scene, 2)
    assert set(np.unique(scene.labels)) >= {0, 7}  # cars and pedestrians at least
    assert (target > 0).sum() > 300
    from pc_kd.datasets.synthetic.driving import lidar2ego_matrix

    l2e = lidar2ego_matrix()
    ego = points[:, :3].astype(np.float64) @ l2e[:3, :3].T + l2e[:3, 3]
    grown = scene.boxes_ego.copy()
    grown[:, 3:6] += 0.1
    idx = Boxes3D(grown).points_in_boxes(torch.from_numpy(ego)).numpy()
    np.testing.assert_array_equal(idx[target > 0], target[target > 0] - 1)
    assert np.abs(ego[target == 0, 2]).max() < 0.06  # ground returns at z = 0 (+ 1 cm range noise)
    rings = set(np.unique(points[:, 4]).astype(int))
    assert rings <= set(range(32)) and len(rings) >= 24  # upward beams may see only sky


def test_synthetic_driving_in_nuscenes_layout_is_consistent(tmp_path):
    ds = SyntheticDrivingDataset(
        data_root=str(tmp_path), num_samples=1, seed=1, image_hw=(90, 160),
        pipeline=[dict(type="LoadPointsFromFile", load_dim=5, use_dim=(0, 1, 2, 3, 4)),
                  dict(type="LoadAnnotations3D", with_seg=False, with_bbox_3d=True, with_velocity=True)])
    out, info = ds.prepare_data(0), ds.get_data_info(0)
    boxes = out["gt_bboxes_3d"]
    grown = boxes.tensor.clone()
    grown[:, 3:6] += 0.1
    in_box = Boxes3D(grown).points_in_boxes(torch.from_numpy(out["points"][:, :3].astype(np.float64))).numpy()
    above_ground = (out["points"][:, :3] @ info["lidar2ego"][:3, :3].T + info["lidar2ego"][:3, 3])[:, 2] > 0.05
    in_box[~above_ground] = -1  # the grown boxes reach into the (noisy) ground returns
    counts = np.bincount(in_box[in_box >= 0], minlength=len(boxes))
    stored = np.array([inst["num_lidar_pts"] for inst in info["instances"]])
    # boxes in the LiDAR frame hold the LiDAR hits of their objects (all but the lowest few centimetres)
    assert (counts <= stored).all() and counts.sum() >= 0.9 * stored.sum()
    # LiDAR hits on an object project onto pixels of that object's paint (lidar2cam and K agree). Per
    # (camera, object) the median colour is compared, since a few hits are hidden from the camera's viewpoint.
    rig = info["cameras"]
    uv, _, inside = rig.project(out["points"][:, :3].astype(np.float64))
    scene = make_driving_scene(1000)  # the scene of train sample 0 with seed 1
    np.testing.assert_allclose(scene.boxes_ego[:, 3:6], boxes.tensor[:, 3:6].numpy())
    chroma_pool = PAINTS / PAINTS.sum(1, keepdims=True)
    paint_ids = [np.abs(chroma_pool - p / p.sum()).sum(1).argmin() for p in scene.paint]
    groups, agree = 0, 0
    for v, path in enumerate(info["img_paths"]):
        img = np.asarray(Image.open(path).convert("RGB")).astype(float)
        for k in range(len(boxes)):
            sel = inside[v] & (in_box == k)
            if sel.sum() < 10:
                continue
            px = np.floor(uv[v][sel]).astype(int)
            colour = np.median(img[px[:, 1], px[:, 0]], axis=0)
            chroma = colour / colour.sum()
            groups += 1
            agree += np.abs(chroma_pool - chroma).sum(1).argmin() == paint_ids[k]
    assert groups >= 5 and agree / groups >= 0.9


def test_raycast_azimuth_culling_equals_testing_every_ray(monkeypatch):
    from pc_kd.datasets.synthetic import raycast as rc
    from pc_kd.datasets.synthetic.driving import cam2ego_matrix, render_camera
    from pc_kd.datasets.synthetic.writer import driving_intrinsic

    scene = make_driving_scene(5, num_objects=30)
    culled = simulate_lidar(scene, 5), render_camera(scene, cam2ego_matrix(110.0), driving_intrinsic((40, 72)), (40, 72))
    monkeypatch.setattr(rc, "_azimuth_candidates", lambda origins, dirs, boxes: (lambda k: None))
    every = simulate_lidar(scene, 5), render_camera(scene, cam2ego_matrix(110.0), driving_intrinsic((40, 72)), (40, 72))
    np.testing.assert_array_equal(culled[0][0], every[0][0])
    np.testing.assert_array_equal(culled[0][1], every[0][1])
    np.testing.assert_array_equal(culled[1], every[1])


def test_driving_v2_attributes_paint_and_asymmetric_parts():
    from pc_kd.datasets.synthetic.driving import NUSCENES_ATTRIBUTES

    scenes = [make_driving_scene(s) for s in range(6)]
    labels = np.concatenate([s.labels for s in scenes])
    speed = np.concatenate([np.hypot(*s.velocity_ego.T) for s in scenes])
    attrs = np.concatenate([s.attr_labels for s in scenes])
    names = [NUSCENES_ATTRIBUTES[a] if a >= 0 else "" for a in attrs]
    for lab, v, name in zip(labels, speed, names):
        cls = ("car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle", "pedestrian",
               "traffic_cone", "barrier")[lab]
        expected = {"car": "vehicle.moving" if v > 0.2 else "vehicle.parked",
                    "truck": "vehicle.moving" if v > 0.2 else "vehicle.parked",
                    "pedestrian": "pedestrian.moving" if v > 0.2 else "pedestrian.standing"}.get(cls, "")
        assert name == expected
    assert 0.3 < (speed[np.isin(labels, [0, 1, 7])] > 0.2).mean() < 0.7  # about half move
    # one paint pool for all classes: cars and trucks share colours
    paint = np.concatenate([s.paint for s in scenes])
    pool = np.abs((PAINTS / PAINTS.sum(1, keepdims=True))[None] - (paint / paint.sum(1, keepdims=True))[:, None]).sum(2).argmin(1)
    assert len(set(pool[labels == 0]) & set(pool[labels == 1])) >= 2
    # the parts of a car / truck / pedestrian are not symmetric front to back: their centroid lies off-centre
    # along the heading
    for s in scenes:
        parts, owner, _ = s.parts()
        for k in np.flatnonzero(np.isin(s.labels, [0, 1, 7])):
            p = parts[owner == k]
            vol = p[:, 3] * p[:, 4] * p[:, 5]
            centroid = (p[:, :2] * vol[:, None]).sum(0) / vol.sum()
            x, y, _, l, _, _, yaw = s.boxes_ego[k]
            along = (centroid - [x, y]) @ [np.cos(yaw), np.sin(yaw)]
            assert abs(along) > 0.01 * l


def test_synthetic_driving_splits_never_share_a_frame():
    from pc_kd.datasets.synthetic.writer import DRIVING_SPLITS, driving_sample_seeds

    for seed in (0, 3):
        frames = {split: driving_sample_seeds(split, limit, seed) for split, (_, limit) in DRIVING_SPLITS.items()}
        assert len(set().union(*frames.values())) == sum(map(len, frames.values()))  # no frame in two splits
        assert frames["train"][0] == seed * 1000 and frames["val"][0] == seed * 1000 + 500  # the cached frames
    assert driving_sample_seeds("test", 2, 0) == [750, 751]
    with pytest.raises(ValueError, match=r"num_samples=251 for split 'val' must be in 0\.\.250"):
        driving_sample_seeds("val", 251, 0)
    with pytest.raises(ValueError, match=r"split='valid' is not one of \['train', 'val', 'test'\]"):
        driving_sample_seeds("valid", 4, 0)
