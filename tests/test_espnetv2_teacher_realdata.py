"""The ESPNetv2 teacher on REAL weights and REAL images: the model zoo's state dicts load strictly (no missing or
unexpected keys); on real nuScenes frames the Cityscapes network labels the LiDAR points inside GT car boxes as
vehicles and the ground as road / sidewalk / terrain; on the real ScanNet frames the PASCAL VOC network's sofa
pixels fall on vertices labelled sofa. A network with one re-implementation mistake fails the same checks (tested:
two BatchNorms swapped; measured and documented in docs/teachers.md: wrong dilations, no input reinforcement, no
channel shuffle). Geometry comes from the nuScenes devkit and ScanNet's poses, not from pc_kd.

Measured on these frames (2 cores, half resolution): vehicle share 0.930, ground share 0.979 (nuScenes, 3 frames x
6 cameras: 782 car points, 24822 ground points); sofa precision 0.929 (ScanNet frames 00165 and 00285, 2650 sofa
pixels on visible vertices). The thresholds sit a margin below.
"""
import numpy as np
import pytest
import torch

from pc_kd.models.backbones.espnetv2 import (CITYSCAPES_CLASSES, VOC_CLASSES, ESPNetV2Segmentation,
                                              ESPNetV2Teacher)

pytestmark = pytest.mark.realdata
CITY = "espnetv2_s_2.0_city_1024x512.pth"
VOC = "espnetv2_s_2.0_pascal_384x384.pth"
CAMS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")


@pytest.fixture(scope="module")
def teachers(real_data):
    return real_data / "teachers"


@pytest.fixture(scope="module")
def city(teachers):
    return ESPNetV2Teacher(weights=str(teachers / CITY))


def _swap_two_batchnorms(teacher):
    a, b = teacher.model.base_net.level3[0].br_after_cat.bn, teacher.model.base_net.level3[1].br_after_cat.bn
    for key in ("running_mean", "running_var", "weight", "bias"):
        x, y = getattr(a, key).detach().clone(), getattr(b, key).detach().clone()
        getattr(a, key).data.copy_(y)
        getattr(b, key).data.copy_(x)
    return teacher


@pytest.mark.parametrize("name, classes", [(CITY, CITYSCAPES_CLASSES), (VOC, VOC_CLASSES)])
def test_model_zoo_weights_load_strictly_with_their_class_names(teachers, name, classes):
    state = torch.load(teachers / name, map_location="cpu", weights_only=True)
    teacher = ESPNetV2Teacher(weights=str(teachers / name))
    own = teacher.model.state_dict()
    assert set(own) == set(state) and len(own) == 526
    assert all(torch.equal(own[k], state[k]) for k in state)
    assert teacher.class_names == list(classes) and teacher.info["width"] == 2.0
    assert sum(p.numel() for p in teacher.parameters()) == pytest.approx(0.79e6, rel=0.01)
    assert not any(p.requires_grad for p in teacher.parameters())
    images = torch.rand(2, 3, 67, 101)  # odd sizes: the decoder follows the encoder's sizes
    logits = teacher.logits(images)
    assert logits.shape == (2, len(classes), 67, 101) and logits.dtype == torch.float32
    feats = teacher(images)
    assert feats.shape == (2, 10, 34, 51)
    # the classifier is a 1x1 conv on those features: on fused (channels-last) features it is the same map
    direct = teacher.classify(feats)
    flat = teacher.classify(feats.permute(0, 2, 3, 1).reshape(-1, 10))
    assert torch.allclose(direct.permute(0, 2, 3, 1).reshape(-1, len(classes)), flat, atol=1e-5)


def test_another_width_or_task_is_named_with_what_the_file_looks_like(teachers, tmp_path):
    narrow = ESPNetV2Segmentation(21, (32, 64, 128, 256))  # s = 1.0, 21 classes
    path = tmp_path / "espnetv2_s_1.0_pascal.pth"
    torch.save(narrow.state_dict(), path)
    with pytest.raises(ValueError) as err:
        ESPNetV2Teacher(weights=str(path), width=2.0)
    msg = str(err.value)
    assert str(path) in msg and "looks like s = 1.0 with 21 classes (PASCAL VOC)" in msg
    assert "base_net.level2_0.act.weight: file (64,), model (128,)" in msg or "shapes differ" in msg
    with pytest.raises(ValueError, match=r"looks like s = 2.0 with 20 classes \(Cityscapes.*"
                                         r"bu_dec_l4.merge_layer.3.weight: file \(20, 10, 1, 1\), model \(21, 10, 1, 1\)"):
        ESPNetV2Teacher(weights=str(teachers / CITY), num_classes=21)
    # read from the file, the narrow one loads
    assert ESPNetV2Teacher(weights=str(path)).info["width"] == 1.0
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="is not an ESPNetv2 segmentation state dict"):
        ESPNetV2Teacher(weights=str(tmp_path / "other.pth"))


# ---------------------------------------------------------------------------------------------- nuScenes
def _nuscenes_views(root, nusc, sample):
    """Per camera of ``sample``: (image path, pixel uv [N, 2] of the key-frame LiDAR points it sees, mask of the
    points in the inner 80 % of a GT car box, mask of ground points: ego-frame z < 0.3 m and in no GT box).
    The devkit's own chain: LiDAR -> ego -> global at the LiDAR time -> ego -> camera at the camera's time."""
    from nuscenes.utils.data_classes import LidarPointCloud
    from nuscenes.utils.geometry_utils import points_in_box, view_points
    from pyquaternion import Quaternion

    lidar = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    cloud = LidarPointCloud.from_file(str(root / lidar["filename"]))
    sensor = nusc.get("calibrated_sensor", lidar["calibrated_sensor_token"])
    pose = nusc.get("ego_pose", lidar["ego_pose_token"])
    cloud.rotate(Quaternion(sensor["rotation"]).rotation_matrix)
    cloud.translate(np.array(sensor["translation"]))
    ego_z = cloud.points[2].copy()
    cloud.rotate(Quaternion(pose["rotation"]).rotation_matrix)
    cloud.translate(np.array(pose["translation"]))
    world = cloud.points[:3]
    in_box, car = np.zeros(world.shape[1], bool), np.zeros(world.shape[1], bool)
    for token in sample["anns"]:
        box = nusc.get_box(token)
        in_box |= points_in_box(box, world)
        if nusc.get("sample_annotation", token)["category_name"] == "vehicle.car":
            car |= points_in_box(box, world, wlh_factor=0.8)
    ground = (ego_z < 0.3) & ~in_box
    views = []
    for cam in CAMS:
        data = nusc.get("sample_data", sample["data"][cam])
        pose_c = nusc.get("ego_pose", data["ego_pose_token"])
        sensor_c = nusc.get("calibrated_sensor", data["calibrated_sensor_token"])
        p = Quaternion(pose_c["rotation"]).rotation_matrix.T @ (world - np.array(pose_c["translation"])[:, None])
        p = Quaternion(sensor_c["rotation"]).rotation_matrix.T @ (p - np.array(sensor_c["translation"])[:, None])
        uv = view_points(p, np.array(sensor_c["camera_intrinsic"]), normalize=True)[:2]
        seen = (p[2] > 1.0) & (uv[0] >= 0) & (uv[0] < 1600) & (uv[1] >= 0) & (uv[1] < 900)
        views.append((root / data["filename"], uv[:, seen].T, car[seen], ground[seen]))
    return views


def _labels_at(teacher, image_path, uv, scale):
    from PIL import Image

    image = Image.open(image_path).convert("RGB")
    w, h = round(image.width * scale), round(image.height * scale)
    x = torch.from_numpy(np.asarray(image.resize((w, h)), np.float32) / 255).permute(2, 0, 1)[None]
    labels = teacher.logits(x)[0].argmax(0).numpy()
    px = np.clip((uv * scale).astype(int), 0, [w - 1, h - 1])
    return labels[px[:, 1], px[:, 0]]


def _street_shares(teacher, root, nusc, samples):
    names = teacher.class_names
    vehicles = [names.index(c) for c in ("car", "truck", "bus")]
    ground = [names.index(c) for c in ("road", "sidewalk", "terrain")]
    counts = np.zeros(4)
    for sample in samples:
        for path, uv, car, flat in _nuscenes_views(root, nusc, sample):
            labels = _labels_at(teacher, path, uv, 0.5)
            counts += [np.isin(labels[car], vehicles).sum(), car.sum(), np.isin(labels[flat], ground).sum(), flat.sum()]
    return counts[0] / counts[1], counts[2] / counts[3], counts


@pytest.fixture(scope="module")
def street(real_data):
    from nuscenes import NuScenes

    root = real_data / "nuscenes_2scenes"
    nusc = NuScenes(version="v1.0-trainval", dataroot=str(root), verbose=False)
    scenes = {s["name"]: s for s in nusc.scene}
    samples = []
    for name, frames in (("scene-0916", (0, 20)), ("scene-0523", (10,))):
        tokens, token = [], scenes[name]["first_sample_token"]
        while token:
            tokens.append(token)
            token = nusc.get("sample", token)["next"]
        samples += [nusc.get("sample", tokens[i]) for i in frames]
    return root, nusc, samples


def test_cityscapes_teacher_labels_real_car_points_as_vehicles_and_the_ground_as_road(city, street):
    vehicle_share, ground_share, counts = _street_shares(city, *street)
    assert counts[1] > 500 and counts[3] > 10000
    assert vehicle_share >= 0.90, counts
    assert ground_share >= 0.96, counts


def test_a_broken_reimplementation_fails_the_street_check(teachers, street):
    broken = _swap_two_batchnorms(ESPNetV2Teacher(weights=str(teachers / CITY)))
    vehicle_share, ground_share, _ = _street_shares(broken, *street)
    assert vehicle_share < 0.90 or ground_share < 0.96


# ---------------------------------------------------------------------------------------------- ScanNet
def _sofa_precision(teacher, scene, frames=("00165", "00285")):
    """Vertices of scene0000_00 visible in ``frames`` (projected with the frame's pose and the colour intrinsics;
    the depth map within 10 cm of the vertex's depth) whose pixel the teacher labels sofa: the share of them
    labelled sofa (nyu40 6) in ScanNet, and how many there are."""
    from PIL import Image

    vertices = np.fromfile(scene / "scene0000_00_vert_unaligned.bin", np.float32).reshape(-1, 6)[:, :3]
    labels = np.load(scene / "scene0000_00_sem_label_all.npy")
    intrinsic = np.loadtxt(scene / "frames" / "intrinsic_color.txt")[:3, :3]
    sofa = teacher.class_names.index("sofa")
    hits = total = 0
    for frame in frames:
        cam = np.linalg.inv(np.loadtxt(scene / "frames" / f"{frame}.txt")) @ np.c_[vertices, np.ones(len(vertices))].T
        z = cam[2]
        uv = (intrinsic @ cam[:3])[:2] / np.where(z > 0, z, 1)
        depth = np.asarray(Image.open(scene / "frames" / f"{frame}.png"), np.float32) / 1000  # 640 x 480
        inside = (z > 0.1) & (uv[0] >= 0) & (uv[0] < 1296) & (uv[1] >= 0) & (uv[1] < 968)
        d = depth[(uv[1] * 480 / 968).astype(int).clip(0, 479), (uv[0] * 640 / 1296).astype(int).clip(0, 639)]
        visible = inside & (d > 0) & (np.abs(d - z) < 0.1)
        said = _labels_at(teacher, scene / "frames" / f"{frame}.jpg", uv[:, visible].T, 0.5) == sofa
        hits += int((labels[visible][said] == 6).sum())
        total += int(said.sum())
    return hits / max(total, 1), total


def test_voc_teacher_sofa_pixels_fall_on_scannet_sofa_vertices(teachers, real_data):
    """scene0000_00 has no vertex labelled chair (nyu40 5); its sofa is the VOC class it holds most of."""
    scene = real_data / "scannet_scene0000_00"
    voc = ESPNetV2Teacher(weights=str(teachers / VOC))
    precision, total = _sofa_precision(voc, scene)
    assert total > 1000 and precision >= 0.85, (precision, total)
    broken_precision, broken_total = _sofa_precision(_swap_two_batchnorms(ESPNetV2Teacher(weights=str(teachers / VOC))),
                                                     scene)
    assert broken_total < 100 or broken_precision < 0.85, (broken_precision, broken_total)


def test_the_random_weight_baseline_is_the_same_network_knowing_nothing(city):
    """The indoor table's trivial baseline: same modules and classes, every weight re-drawn, BatchNorm statistics
    fresh; the trained teacher is untouched."""
    from pc_kd.experiments.real_teachers import with_random_weights

    before = {k: v.clone() for k, v in city.state_dict().items()}
    random = with_random_weights(city)
    assert random.class_names == city.class_names and set(random.state_dict()) == set(before)
    assert all(torch.equal(city.state_dict()[k], v) for k, v in before.items())
    changed = [k for k, v in random.state_dict().items() if v.is_floating_point() and not torch.equal(v, before[k])]
    assert len(changed) > 0.9 * sum(v.is_floating_point() for v in before.values())
    images = torch.rand(1, 3, 64, 96)
    assert random(images).shape == city(images).shape
    assert not torch.allclose(random.logits(images), city.logits(images))
    assert torch.equal(with_random_weights(city).logits(images), random.logits(images))  # seeded
