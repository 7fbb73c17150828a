"""Bad input raises errors that name the file or field and say what was expected; writes are atomic."""
import os
import pickle
import stat

import numpy as np
import pytest
import torch

from pc_kd.datasets import NuScenesDataset, ScanNetDataset
from pc_kd.datasets.transforms import LoadAnnotations3D, LoadPointsFromFile
from pc_kd.engine import AtomicLocalBackend, CheckpointFileError, ConfigError, check_config_keys, load_local_checkpoint
from pc_kd.utils.checks import DataError
from pc_kd.utils.io import atomic_write, dump_pickle_atomic, read_matrix_txt


def _points_file(tmp_path, array, name="scene.bin"):
    path = tmp_path / name
    np.asarray(array, dtype=np.float32).tofile(path)
    return str(path)


def test_truncated_bin_names_file_and_row_size(tmp_path):
    path = tmp_path / "cut.bin"
    np.zeros(6 * 10 + 2, np.float32).tofile(path)
    with pytest.raises(ValueError, match=r"cut.bin.*not a multiple of the row size 6 x float32"):
        LoadPointsFromFile(load_dim=6)({"lidar_path": str(path)})


def test_missing_points_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="points file not found: .*nothing.bin"):
        LoadPointsFromFile()({"lidar_path": str(tmp_path / "nothing.bin")})


def test_empty_cloud(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        LoadPointsFromFile()({"lidar_path": _points_file(tmp_path, np.zeros((0, 6)))})


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_coordinates_are_located(tmp_path, bad):
    pts = np.ones((5, 6))
    pts[3, 1] = bad
    with pytest.raises(ValueError, match=r"scene.bin: 1 of 5 points have NaN or inf coordinates \(first at row 3"):
        LoadPointsFromFile()({"lidar_path": _points_file(tmp_path, pts)})


def test_mask_length_must_match_points(tmp_path):
    results = LoadPointsFromFile()({"lidar_path": _points_file(tmp_path, np.ones((5, 6)))})
    mask = tmp_path / "mask.bin"
    np.zeros(4, np.int64).tofile(mask)
    results.update(pts_semantic_mask_path=str(mask), seg_label_mapping=np.arange(256))
    with pytest.raises(ValueError, match=r"mask.bin: 4 labels for 5 points"):
        LoadAnnotations3D()(results)


@pytest.mark.parametrize("text,match", [("1 0 0 0\n0 1 0 0\n0 0 1 0\n", r"expected a 4x4 matrix, got shape \(3, 4\)"),
                                        ("1 0 0 0\n0 1 0 0\n0 0 0 0\n0 0 0 1\n", "singular"),
                                        ("1 0 0 nan\n0 1 0 0\n0 0 1 0\n0 0 0 1\n", "NaN or inf"),
                                        ("1 0 0 x\n", "not a whitespace-separated numeric matrix")])
def test_bad_calibration_file(tmp_path, text, match):
    path = tmp_path / "pose.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as err:
        read_matrix_txt(path, "camera pose")
    assert "pose.txt" in str(err.value)


def _nuscenes_info(tmp_path, lidar2cam):
    (tmp_path / "samples" / "LIDAR_TOP").mkdir(parents=True)
    (tmp_path / "samples" / "CAM_FRONT").mkdir(parents=True)
    np.zeros((3, 5), np.float32).tofile(tmp_path / "samples" / "LIDAR_TOP" / "a.bin")
    (tmp_path / "samples" / "CAM_FRONT" / "a.jpg").write_bytes(b"")
    entry = dict(token="tok", ego2global=np.eye(4).tolist(),
                 lidar_points=dict(lidar_path="a.bin", lidar2ego=np.eye(4).tolist()),
                 images={"CAM_FRONT": dict(img_path="a.jpg", cam2img=np.eye(3).tolist(), lidar2cam=lidar2cam)})
    with open(tmp_path / "infos.pkl", "wb") as f:
        pickle.dump({"metainfo": {}, "data_list": [entry]}, f)


def test_singular_camera_matrix_in_info_names_sample_and_camera(tmp_path):
    lidar2cam = np.eye(4)
    lidar2cam[1] = 0
    _nuscenes_info(tmp_path, lidar2cam.tolist())
    with pytest.raises(ValueError, match=r"infos.pkl, sample tok: images\['CAM_FRONT'\]\['lidar2cam'\].*singular"):
        NuScenesDataset(ann_file="infos.pkl", data_root=str(tmp_path))


def test_three_by_three_extrinsics_are_refused(tmp_path):
    _nuscenes_info(tmp_path, np.eye(3).tolist())
    with pytest.raises(ValueError, match=r"lidar2cam'\]: expected a 4x4 matrix, got shape \(3, 3\)"):
        NuScenesDataset(ann_file="infos.pkl", data_root=str(tmp_path))


def test_wrong_data_root_fails_at_start_with_a_hint(tmp_path):
    with open(tmp_path / "infos.pkl", "wb") as f:
        pickle.dump({"metainfo": {}, "data_list": [{"lidar_points": {"lidar_path": "s.bin"}}]}, f)
    with pytest.raises(FileNotFoundError, match=r"lidar_points.lidar_path -> .*points/s.bin does not exist; check "
                                                 r"data_root / data_prefix\['pts'\]"):
        ScanNetDataset(ann_file="infos.pkl", data_root=str(tmp_path))


def test_old_info_format_is_explained(tmp_path):
    with open(tmp_path / "old.pkl", "wb") as f:
        pickle.dump([{"point_cloud": {}}], f)
    with pytest.raises(ValueError, match="mmdet3d v1.x format"):
        ScanNetDataset(ann_file="old.pkl", data_root=str(tmp_path))


def test_misspelt_top_level_config_key():
    from mmengine.config import Config

    cfg = Config(dict(model=dict(type="X"), train_dataloder=dict(), data_root="d"))
    with pytest.raises(ConfigError, match="unknown top-level key 'train_dataloder'; did you mean 'train_dataloader'"):
        check_config_keys(cfg, "my_config.py")
    check_config_keys(Config(dict(model=dict(type="X"), data_root="d", voxel_size=0.05)), "ok.py")  # helpers pass


def test_runner_keys_the_config_does_not_set_are_accepted_as_options():
    from mmengine.config import Config

    from pc_kd.engine import check_option_keys

    cfg = Config(dict(model=dict(type="X"), data_root="d"))
    check_option_keys(cfg, {"work_dir": "w", "resume": True, "experiment_name": "e"})
    with pytest.raises(ConfigError, match="unknown top-level key 'work_dri'; did you mean 'work_dir'"):
        check_option_keys(cfg, {"work_dri": "w"})


def test_unknown_model_argument_names_class_and_key():
    from pc_kd.registry import MODELS

    with pytest.raises(TypeError, match="SegHead.*num_clases"):
        MODELS.build(dict(type="SegHead", in_channels=4, num_clases=3))


def test_atomic_write_leaves_nothing_when_interrupted(tmp_path):
    target = tmp_path / "out.pkl"
    dump_pickle_atomic({"v": 1}, target)

    class Unpicklable:
        def __reduce__(self):
            raise KeyboardInterrupt("killed while writing")

    with pytest.raises(KeyboardInterrupt):
        dump_pickle_atomic({"v": 2, "x": Unpicklable()}, target)
    assert pickle.load(open(target, "rb")) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.pkl"]  # no temp file left
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "new.bin") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError
    assert not (tmp_path / "new.bin").exists()


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_write_gives_the_mode_of_a_plain_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        dump_pickle_atomic({"v": 1}, tmp_path / "atomic.pkl")
        with open(tmp_path / "plain.pkl", "wb") as f:
            f.write(b"x")
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "atomic.pkl").stat().st_mode)
    assert mode == 0o666 & ~umask == stat.S_IMODE((tmp_path / "plain.pkl").stat().st_mode), oct(mode)
    assert old == os.umask(old)  # the writer put the process umask back


def test_checkpoint_backend_keeps_old_file_when_a_save_fails(tmp_path, monkeypatch):
    import os

    backend = AtomicLocalBackend()
    target = tmp_path / "epoch_1.pth"
    backend.put(b"old", target)

    def fail(_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError):
        backend.put(b"new and longer", target)
    assert target.read_bytes() == b"old" and len(list(tmp_path.iterdir())) == 1


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "obj": pickle.PickleError("x")}, path)
    with pytest.raises(CheckpointFileError, match=r"evil.pth holds objects outside pc_kd's allowlist"):
        load_local_checkpoint(str(path))


def test_teacher_frames_without_2d_labels_are_named():
    from pc_kd.engine.teacher_training import load_labelled_frames

    class Frames:  # the two calls load_labelled_frames makes of a dataset
        def __init__(self, frames):
            self.frames = frames

        def __len__(self):
            return 1

        def get_data_info(self, i):
            return {"images": self.frames}

    with pytest.raises(KeyError, match=r"frame rooms/frame_007.jpg has no 2D label image \(label_path\)"):
        load_labelled_frames(Frames([{"img_path": "rooms/frame_007.jpg"}]))
    with pytest.raises(ValueError, match="lists no frames"):
        load_labelled_frames(Frames([]))


def test_depth_maps_of_another_aspect_ratio_are_refused_with_the_fix(tmp_path):
    """A depth map of the colour frame's aspect ratio is the colour view scaled (ScanNet's 640 x 480 for 1296 x 968)
    and is resized; one of another aspect ratio has intrinsics of its own that pc_kd does not have: named, with
    the fix."""
    from PIL import Image

    from pc_kd.projection.fusion import MissingFrameError, load_frames

    Image.fromarray(np.zeros((97, 129, 3), np.uint8)).save(tmp_path / "0.jpg")
    frame = dict(img_path=str(tmp_path / "0.jpg"), cam2world=np.eye(4), cam2img=np.eye(3),
                 depth_path=str(tmp_path / "0.png"), depth_shift=1000.0)
    Image.fromarray(np.full((48, 64), 1000, np.uint16)).save(tmp_path / "0.png")  # 4:3 like 129 x 97
    _, _, depth = load_frames([frame], "scene_a")
    assert depth.shape == (1, 97, 129) and float(depth.max()) == 1.0
    Image.fromarray(np.full((36, 64), 1000, np.uint16)).save(tmp_path / "0.png")  # 16:9
    with pytest.raises(MissingFrameError, match=r"scene scene_a: depth image .*0\.png is 64 x 36 for a 129 x 97 "
                                                r"colour frame.*Register the depth maps"):
        load_frames([frame], "scene_a")


def test_scannet_frames_without_intrinsics_pose_or_colour_are_named(tmp_path):
    from pc_kd.experiments.real_teachers import scannet_frames

    frames = tmp_path / "scene" / "frames"
    frames.mkdir(parents=True)
    with pytest.raises(DataError, match=r"frames: no intrinsic_color\.txt"):
        scannet_frames(tmp_path / "scene")
    np.savetxt(frames / "intrinsic_color.txt", np.eye(4))
    with pytest.raises(DataError, match=r"frames: no <frame>\.jpg colour frames"):
        scannet_frames(tmp_path / "scene")
    (frames / "00000.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=r"00000\.jpg: no pose file 00000\.txt"):
        scannet_frames(tmp_path / "scene")
    np.savetxt(frames / "00000.txt", np.full((4, 4), -np.inf))
    with pytest.raises(DataError, match=r"00000\.txt: not a valid 4x4 camera-to-world pose.*drop the frame"):
        scannet_frames(tmp_path / "scene")


def test_a_class_mapping_naming_a_class_the_teacher_lacks_is_named():
    from pc_kd.experiments.real_nuscenes_points import CITYSCAPES_TO_BOX_CLASSES, class_mapping
    from pc_kd.models.backbones.espnetv2 import CITYSCAPES_CLASSES

    index = class_mapping(CITYSCAPES_CLASSES, CITYSCAPES_TO_BOX_CLASSES)
    assert [CITYSCAPES_CLASSES[i] for i in np.flatnonzero(index != 8)] == ["person", "rider", "car", "truck", "bus",
                                                                            "train", "motorcycle", "bicycle"]
    with pytest.raises(DataError, match=r"\['pedestrian'\] not among the teacher's classes \['road', 'sidewalk'"):
        class_mapping(CITYSCAPES_CLASSES, dict(CITYSCAPES_TO_BOX_CLASSES, pedestrian="pedestrian"))
    with pytest.raises(DataError, match=r"target class\(es\) \['cars'\] not among"):
        class_mapping(CITYSCAPES_CLASSES, dict(CITYSCAPES_TO_BOX_CLASSES, car="cars"))


def test_per_column_feature_scales_and_a_wrong_count_is_named(tmp_path):
    """``color_scale`` per feature column: nuScenes intensity 0..255 -> 0..1 beside the height kept in metres."""
    points = np.array([[1.0, 2.0, -1.5, 255.0, 7.0], [0.0, 0.0, 0.5, 51.0, 3.0]], np.float32)
    path = _points_file(tmp_path, points)
    out = LoadPointsFromFile(load_dim=5, use_dim=(0, 1, 2, 3, 2), color_scale=(255.0, 1.0))({"lidar_path": path})
    np.testing.assert_allclose(out["points"], [[1, 2, -1.5, 1.0, -1.5], [0, 0, 0.5, 0.2, 0.5]], rtol=1e-6)
    with pytest.raises(ValueError, match=r"color_scale \(255.0, 1.0, 1.0\) has 3 values for 2 feature columns"):
        LoadPointsFromFile(load_dim=5, use_dim=(0, 1, 2, 3, 2), color_scale=(255.0, 1.0, 1.0))({"lidar_path": path})
