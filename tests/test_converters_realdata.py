"""Converters from the official layouts, fed with files rebuilt from the real samples (in a temp folder)."""
import json
import pickle
import shutil

import numpy as np
import pytest
from pyquaternion import Quaternion

from pc_kd.datasets import NuScenesDataset, S3DISDataset, ScanNetDataset
from pc_kd.datasets.converters import create_nuscenes_infos, create_s3dis_infos, create_scannet_infos
from pc_kd.structures.class_names import S3DIS_CLASSES
from pc_kd.utils.io import read_bin, read_matrix_txt

pytestmark = pytest.mark.realdata


def _write_ply(path, columns: dict):
    from plyfile import PlyData, PlyElement

    n = len(next(iter(columns.values())))
    arr = np.empty(n, dtype=[(k, v.dtype) for k, v in columns.items()])
    for k, v in columns.items():
        arr[k] = v
    PlyData([PlyElement.describe(arr, "vertex")], text=False).write(str(path))


@pytest.fixture(scope="module")
def scannet_raw(real_data, tmp_path_factory):
    """scans/scene0000_00 in the download layout, made from the real vertices, labels and two frames."""
    src = real_data / "scannet_scene0000_00"
    root = tmp_path_factory.mktemp("scannet_raw")
    scene = root / "scans" / "scene0000_00"
    scene.mkdir(parents=True)
    verts = read_bin(src / "scene0000_00_vert_unaligned.bin", np.float32, 6)
    sem = np.load(src / "scene0000_00_sem_label_all.npy").astype(np.int64)
    ins = np.load(src / "scene0000_00_ins_label_all.npy").astype(np.int64)
    xyz = {k: verts[:, i].astype(np.float32) for i, k in enumerate("xyz")}
    rgb = {k: verts[:, 3 + i].astype(np.uint8) for i, k in enumerate(("red", "green", "blue"))}
    _write_ply(scene / "scene0000_00_vh_clean_2.ply", {**xyz, **rgb})
    _write_ply(scene / "scene0000_00_vh_clean_2.labels.ply", {**xyz, "label": sem.astype(np.uint16)})
    seg_ids = np.where(ins > 0, ins, 1000 + np.arange(len(ins)) % 7)  # non-object vertices: other segments
    (scene / "scene0000_00_vh_clean_2.0.010000.segs.json").write_text(json.dumps({"segIndices": seg_ids.tolist()}))
    groups = [{"id": int(i) - 1, "objectId": int(i) - 1, "segments": [int(i)], "label": "x"}
              for i in np.unique(ins[ins > 0])]
    (scene / "scene0000_00.aggregation.json").write_text(json.dumps({"segGroups": groups}))
    align = read_matrix_txt(src / "axis_align_matrix.txt")
    (scene / "scene0000_00.txt").write_text("sceneType = Apartment\naxisAlignment = "
                                            + " ".join(f"{v:.6f}" for v in align.ravel()) + "\n")
    for sub in ("color", "pose", "intrinsic"):
        (scene / sub).mkdir()
    shutil.copy(src / "posed_images" / "intrinsic.txt", scene / "intrinsic" / "intrinsic_color.txt")
    for i, frame in enumerate(("00000", "00011")):
        shutil.copy(src / "posed_images" / f"{frame}.jpg", scene / "color" / f"{i}.jpg")
        shutil.copy(src / "posed_images" / f"{frame}.txt", scene / "pose" / f"{i}.txt")
    shutil.copy(src / "posed_images" / "00000.jpg", scene / "color" / "2.jpg")
    (scene / "pose" / "2.txt").write_text("-inf -inf -inf -inf\n" * 4)  # lost tracking, as ScanNet marks it
    return root, verts, sem, ins, align


def test_scannet_raw_layout_converts_and_loads(scannet_raw, tmp_path):
    root, verts, sem, ins, align = scannet_raw
    info_path = create_scannet_infos(root, tmp_path, "train", frame_step=1)
    ds = ScanNetDataset(ann_file=info_path.name, data_root=str(tmp_path),
                        pipeline=[dict(type="LoadPointsFromFile", load_dim=6),
                                  dict(type="LoadAnnotations3D", with_instance_mask=True, with_bbox_3d=True)])
    out = ds.prepare_data(0)
    np.testing.assert_array_equal(out["points"], verts)
    np.testing.assert_array_equal(out["pts_instance_mask"], ins)
    to20 = np.full(256, 255)
    to20[[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]] = np.arange(20)
    np.testing.assert_array_equal(out["pts_semantic_mask"], to20[sem])
    info = ds.get_data_info(0)
    np.testing.assert_allclose(info["axis_align_matrix"], align, atol=1e-6)
    assert len(info["images"]) == 2  # the frame with an inf pose is skipped
    np.testing.assert_allclose(info["images"][1]["cam2world"],
                               read_matrix_txt(root / "scans/scene0000_00/pose/1.txt"))
    # boxes: axis-aligned in the aligned frame, around each object's aligned vertices
    aligned = verts[:, :3] @ align[:3, :3].T + align[:3, 3]
    boxes = out["gt_bboxes_3d"].tensor.numpy()
    assert 15 <= len(boxes) <= 67
    inside = (np.abs(aligned[:, None] - boxes[None, :, :3]) <= boxes[None, :, 3:6] / 2 + 1e-5).all(-1)
    assert inside.any(0).all()


def test_scannet_conversion_resumes_from_finished_scenes(scannet_raw, tmp_path, monkeypatch):
    root = scannet_raw[0]
    create_scannet_infos(root, tmp_path, "train", frame_step=1)
    import pc_kd.datasets.converters.scannet as conv

    def boom(*a, **k):
        raise AssertionError("a finished scene was converted again")

    monkeypatch.setattr(conv, "convert_scannet_scene", boom)
    info = pickle.load(open(create_scannet_infos(root, tmp_path, "train", frame_step=1), "rb"))
    assert info["data_list"][0]["sample_idx"] == "scene0000_00"


def test_scannet_processed_sample_loads(real_data):
    ds = ScanNetDataset(ann_file="scannet_infos.pkl", data_root=str(real_data / "scannet_100pts"),
                        pipeline=[dict(type="LoadPointsFromFile", load_dim=6),
                                  dict(type="LoadAnnotations3D", with_instance_mask=True, with_bbox_3d=True),
                                  dict(type="PackPointInputs")])
    sample = ds[0]
    assert sample["inputs"]["points"].shape == (100, 6)
    sem = sample["data_samples"].gt_pts_seg.pts_semantic_mask
    raw = np.fromfile(real_data / "scannet_100pts/semantic_mask/scene0000_00.bin", np.int64)
    assert ((sem == 255).numpy() == ~np.isin(raw, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34,
                                                   36, 39])).all()
    assert len(sample["data_samples"].gt_instances_3d.bboxes_3d) == 27


@pytest.fixture(scope="module")
def s3dis_raw(real_data, tmp_path_factory):
    """Area_1/office_2/Annotations/<class>_<n>.txt rebuilt from the real 100-point room."""
    src = real_data / "s3dis_100pts"
    pts = read_bin(src / "points/Area_1_office_2.bin", np.float32, 6).astype(np.float64)
    sem = np.fromfile(src / "semantic_mask/Area_1_office_2.bin", np.int64)
    ins = np.fromfile(src / "instance_mask/Area_1_office_2.bin", np.int64)
    root = tmp_path_factory.mktemp("s3dis_raw")
    ann = root / "Area_1" / "office_2" / "Annotations"
    ann.mkdir(parents=True)
    shift = np.array([1.5, -2.0, 0.25])  # the raw files are not shifted to the room minimum
    order = []
    for n, inst in enumerate(np.unique(ins)):
        m = ins == inst
        name = S3DIS_CLASSES[sem[m][0]] if sem[m][0] != 12 or n % 2 else "stairs"  # stairs -> clutter
        np.savetxt(ann / f"{name}_{n + 1}.txt", np.c_[pts[m, :3] + shift, pts[m, 3:]], fmt="%.3f %.3f %.3f %d %d %d")
        order.append(np.flatnonzero(m))
    return root, pts, sem, np.concatenate(sorted(order, key=lambda idx: f"{S3DIS_CLASSES[sem[idx[0]]]}"))


def test_s3dis_raw_layout_converts_and_loads(s3dis_raw, tmp_path):
    root, pts, sem, _ = s3dis_raw
    (info_path,) = create_s3dis_infos(root, tmp_path, areas=(1,))
    ds = S3DISDataset(ann_file=info_path.name, data_root=str(tmp_path),
                      pipeline=[dict(type="LoadPointsFromFile", load_dim=6),
                                dict(type="LoadAnnotations3D", with_instance_mask=True)])
    out = ds.prepare_data(0)
    assert out["points"].shape == (100, 6)
    np.testing.assert_allclose(out["points"][:, :3].min(0), 0, atol=1e-6)
    # same multiset of (x, y, z, label) as the source room, which is also min-shifted
    got = sorted(map(tuple, np.round(np.c_[out["points"][:, :3], out["pts_semantic_mask"]], 3)))
    ref = sorted(map(tuple, np.round(np.c_[pts[:, :3] - pts[:, :3].min(0), sem], 3)))
    assert got == ref
    assert len(np.unique(out["pts_instance_mask"])) == len(list((root / "Area_1/office_2/Annotations").iterdir()))


def test_s3dis_bad_annotation_line_names_file_and_line(tmp_path):
    ann = tmp_path / "Area_5" / "hallway_6" / "Annotations"
    ann.mkdir(parents=True)
    (ann / "ceiling_1.txt").write_bytes(b"1 2 3 4 5 6\n1 2 3\x10 4 5 6\n")
    with pytest.raises(ValueError, match=r"ceiling_1.txt:2"):
        create_s3dis_infos(tmp_path, tmp_path / "out", areas=(5,))


def test_s3dis_processed_sample_loads(real_data):
    ds = S3DISDataset(ann_file="s3dis_infos.pkl", data_root=str(real_data / "s3dis_100pts"),
                      pipeline=[dict(type="LoadPointsFromFile", load_dim=6), dict(type="LoadAnnotations3D"),
                                dict(type="PackPointInputs")])
    sem = ds[0]["data_samples"].gt_pts_seg.pts_semantic_mask.numpy()
    np.testing.assert_array_equal(sem, np.fromfile(real_data / "s3dis_100pts/semantic_mask/Area_1_office_2.bin",
                                                   np.int64))


def _token(name, i=0):
    return f"{name}{i:04d}".ljust(32, "0")


def _record(mat):
    return dict(rotation=list(Quaternion(matrix=mat[:3, :3], atol=1e-6).elements), translation=mat[:3, 3].tolist())


@pytest.fixture(scope="module")
def nuscenes_tables(real_data, tmp_path_factory):
    """v1.0-mini tables for the real key frame: real calibration, camera ego poses chosen so that the
    motion-compensated lidar2cam equals the stored one, annotations = the stored boxes moved to global."""
    from nuscenes.utils.data_classes import Box

    src = real_data / "nuscenes_demo"
    stored = pickle.load(open(src / "mmdet3d_infos_v1.1.pkl", "rb"))
    info, classes = stored["data_list"][0], list(stored["metainfo"]["categories"])
    root = tmp_path_factory.mktemp("nuscenes")
    shutil.copytree(src / "samples", root / "samples")
    ego2global, lidar2ego = np.array(info["ego2global"]), np.array(info["lidar_points"]["lidar2ego"])
    lidar2global = ego2global @ lidar2ego
    sample_tok, scene_tok, log_tok = _token("sample"), _token("scene"), _token("log")
    t = dict(category=[], attribute=[], visibility=[{"token": "1", "level": "v0-40", "description": ""}],
             instance=[], sensor=[], calibrated_sensor=[], ego_pose=[], sample_annotation=[], sample_data=[],
             log=[{"token": log_tok, "logfile": "n015-2018-07-24-11-22-45+0800", "vehicle": "n015",
                   "date_captured": "2018-07-24", "location": "singapore-onenorth"}],
             scene=[{"token": scene_tok, "name": "scene-test", "description": "", "log_token": log_tok,
                     "nbr_samples": 1, "first_sample_token": sample_tok, "last_sample_token": sample_tok}],
             sample=[{"token": sample_tok, "timestamp": int(info["timestamp"] * 1e6), "scene_token": scene_tok,
                      "next": "", "prev": ""}],
             map=[{"token": _token("map"), "log_tokens": [log_tok], "category": "semantic_prior",
                   "filename": ""}])
    channels = [("LIDAR_TOP", "lidar", lidar2ego, ego2global, info["lidar_points"]["lidar_path"],
                 int(info["timestamp"] * 1e6), [])]
    for name, cam in info["images"].items():
        cam2ego = np.array(cam["cam2ego"])
        cam2global = lidar2global @ np.linalg.inv(np.array(cam["lidar2cam"]))
        channels.append((name, "camera", cam2ego, cam2global @ np.linalg.inv(cam2ego), cam["img_path"],
                         int(cam["timestamp"] * 1e6), cam["cam2img"]))
    for i, (name, modality, sensor2ego, ego_pose, filename, stamp, K) in enumerate(channels):
        t["sensor"].append({"token": _token("sensor", i), "channel": name, "modality": modality})
        t["calibrated_sensor"].append({"token": _token("calib", i), "sensor_token": _token("sensor", i),
                                       "camera_intrinsic": K, **_record(sensor2ego)})
        t["ego_pose"].append({"token": _token("ego", i), "timestamp": stamp, **_record(ego_pose)})
        t["sample_data"].append({"token": _token("sd", i), "sample_token": sample_tok, "ego_pose_token": _token("ego", i),
                                 "calibrated_sensor_token": _token("calib", i), "timestamp": stamp,
                                 "fileformat": "pcd" if modality == "lidar" else "jpg", "is_key_frame": True,
                                 "height": 900 if K else 0, "width": 1600 if K else 0,
                                 "filename": f"samples/{name}/{filename}", "prev": "", "next": ""})
    categories = {"car": "vehicle.car", "truck": "vehicle.truck", "trailer": "vehicle.trailer",
                  "bus": "vehicle.bus.rigid", "construction_vehicle": "vehicle.construction",
                  "bicycle": "vehicle.bicycle", "motorcycle": "vehicle.motorcycle",
                  "pedestrian": "human.pedestrian.adult", "traffic_cone": "movable_object.trafficcone",
                  "barrier": "movable_object.barrier", None: "animal"}
    names = list(categories.values())
    t["category"] = [{"token": _token("cat", i), "name": n, "description": ""} for i, n in enumerate(names)]
    for i, inst in enumerate(info["instances"]):
        x, y, z, l, w, h, yaw = inst["bbox_3d"]
        box = Box([x, y, z], [w, l, h], Quaternion(axis=[0, 0, 1], angle=yaw))
        box.rotate(Quaternion(matrix=lidar2global[:3, :3], atol=1e-6))
        box.translate(lidar2global[:3, 3])
        label = inst["bbox_label_3d"]
        cat = names.index(categories[classes[label] if label >= 0 else None])
        t["instance"].append({"token": _token("inst", i), "category_token": _token("cat", cat), "nbr_annotations": 1,
                              "first_annotation_token": _token("ann", i), "last_annotation_token": _token("ann", i)})
        t["sample_annotation"].append({"token": _token("ann", i), "sample_token": sample_tok,
                                       "instance_token": _token("inst", i), "visibility_token": "1",
                                       "attribute_tokens": [], "translation": box.center.tolist(),
                                       "size": box.wlh.tolist(), "rotation": list(box.orientation.elements),
                                       "prev": "", "next": "", "num_lidar_pts": int(inst["num_lidar_pts"]),
                                       "num_radar_pts": int(inst["num_radar_pts"])})
    (root / "v1.0-mini").mkdir()
    for name, rows in t.items():
        (root / "v1.0-mini" / f"{name}.json").write_text(json.dumps(rows))
    return root, info


def test_nuscenes_devkit_tables_convert_to_the_stored_info(nuscenes_tables, tmp_path):
    root, ref = nuscenes_tables
    info_path = create_nuscenes_infos(root, tmp_path, "v1.0-mini", "all")
    entry = pickle.load(open(info_path, "rb"))["data_list"][0]
    np.testing.assert_allclose(entry["ego2global"], ref["ego2global"], atol=1e-6)
    np.testing.assert_allclose(entry["lidar_points"]["lidar2ego"], ref["lidar_points"]["lidar2ego"], atol=1e-6)
    for name, cam in ref["images"].items():
        for key in ("cam2img", "cam2ego", "lidar2cam"):
            np.testing.assert_allclose(entry["images"][name][key], cam[key], atol=1e-6, err_msg=f"{name} {key}")
    got = {tuple(np.round(i["bbox_3d"][:3], 4)): i for i in entry["instances"]}
    assert len(got) == len(ref["instances"]) == 69
    for inst in ref["instances"]:
        mine = got[tuple(np.round(inst["bbox_3d"][:3], 4))]
        np.testing.assert_allclose(mine["bbox_3d"][:6], inst["bbox_3d"][:6], atol=1e-5)
        dyaw = (mine["bbox_3d"][6] - inst["bbox_3d"][6] + np.pi) % (2 * np.pi) - np.pi
        assert abs(dyaw) < 1e-5
        assert mine["bbox_label_3d"] == inst["bbox_label_3d"]
    ds = NuScenesDataset(ann_file=str(info_path), data_root=str(root),
                         pipeline=[dict(type="LoadPointsFromFile", load_dim=5, use_dim=(0, 1, 2, 3, 4))])
    pts = ds.prepare_data(0)["points"][:, :3].astype(np.float64)
    rig = ds.get_data_info(0)["cameras"]
    assert rig.project(pts)[2][rig.names.index("CAM_FRONT")].sum() == 3067


def test_scannet_mmdet3d_processed_layout_with_posed_images(real_data, tmp_path):
    """points/, semantic_mask/ and posed_images/<scene>/ as mmdet3d exports them, info without an image list:
    the loader finds the frames, and a frame's colours match the vertex colours it sees."""
    import torch
    from PIL import Image

    from pc_kd.projection import project_points, zbuffer_visibility

    src = real_data / "scannet_scene0000_00"
    (tmp_path / "points").mkdir()
    (tmp_path / "semantic_mask").mkdir()
    shutil.copy(src / "scene0000_00_vert_unaligned.bin", tmp_path / "points" / "scene0000_00.bin")
    np.load(src / "scene0000_00_sem_label_all.npy").astype(np.int64).tofile(tmp_path / "semantic_mask" /
                                                                            "scene0000_00.bin")
    shutil.copytree(src / "posed_images", tmp_path / "posed_images" / "scene0000_00")
    with open(tmp_path / "scannet_infos_val.pkl", "wb") as f:
        pickle.dump({"metainfo": {"DATASET": "SCANNET"}, "data_list": [{
            "sample_idx": "scene0000_00", "lidar_points": {"num_pts_feats": 6, "lidar_path": "scene0000_00.bin"},
            "pts_semantic_mask_path": "scene0000_00.bin"}]}, f)
    ds = ScanNetDataset(ann_file="scannet_infos_val.pkl", data_root=str(tmp_path),
                        pipeline=[dict(type="LoadPointsFromFile", load_dim=6), dict(type="LoadAnnotations3D")])
    info, out = ds.get_data_info(0), ds.prepare_data(0)
    assert [img["img_path"].rsplit("/", 1)[1] for img in info["images"]] == ["00000.jpg", "00011.jpg"]
    frame = info["images"][0]
    image = np.asarray(Image.open(frame["img_path"]).convert("RGB"))
    lidar2img = torch.from_numpy(np.array(frame["cam2img"]) @ np.linalg.inv(np.array(frame["cam2world"])))[None]
    pts = torch.from_numpy(out["points"][:, :3].astype(np.float64))
    visible = zbuffer_visibility(pts, lidar2img, image.shape[:2], radius_px=4)[0]
    uv = project_points(pts, lidar2img, image.shape[:2]).uv[0][visible].floor().long().numpy()
    r = np.corrcoef(image[uv[:, 1], uv[:, 0]].ravel().astype(float),
                    out["points"][visible.numpy(), 3:].ravel().astype(float))[0, 1]
    assert r >= 0.5
