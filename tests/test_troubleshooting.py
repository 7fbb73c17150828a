"""Every row of docs/troubleshooting.md is triggered here and its message checked against the table, so the
table and the messages cannot drift apart; the command-line rows run the tools as a user would and check that
the console shows the error line, not a traceback or a config dump."""
import logging
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pc_kd.engine import (CheckpointFileError, CheckpointMismatchError, ConfigError, check_config_keys,
                          check_state_dict_matches, load_checked_config, load_local_checkpoint, resume_settings)

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "troubleshooting.md"
LIDAR_CONFIG = "configs/supervised/supervised_centerpoint-pillar_none_synthetic-driving.py"
INDOOR_CONFIG = "configs/supervised/supervised_spconv-unet_none_synthetic-indoor.py"
NUSCENES_CONFIG = "configs/supervised/supervised_centerpoint-voxel_none_nuscenes.py"


def _rows():
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[1].startswith("`"):
            rows[cells[0]] = cells[1].strip("`")
    return rows


def _pattern(message: str) -> str:
    """The table's message as a regex: literal text, ``<...>`` placeholders match anything."""
    return ".*?".join(re.escape(chunk) for chunk in re.split(r"<[^>]*>", message))


def _tool(args, cwd=ROOT, env_extra=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env_extra or {}))
    out = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)
    return out.returncode, out.stdout + out.stderr


def _python_tool(script, *args):
    return _tool([sys.executable, str(ROOT / "tools" / script), *args])


def _raise(fn):
    try:
        fn()
    except Exception as err:  # noqa: BLE001 - the message is what is checked
        return str(err)
    raise AssertionError("no error raised")


# ------------------------------------------------------------------------------------------- the triggers
def config_not_found(tmp_path):
    code, out = _python_tool("train.py", "configs/supervised/supervised_centerpoint-pilar_none_synthetic-driving.py")
    assert code == 1 and "Traceback" not in out
    assert "configs/supervised/supervised_centerpoint-pillar_none_synthetic-driving.py" in out  # the suggestion
    return out


def config_misspelt_override(tmp_path):
    user = tmp_path / "my_config.py"  # the base sets train_dataloader; the user's override is misspelt
    user.write_text(f"_base_ = [{str(ROOT / LIDAR_CONFIG)!r}]\ntrain_dataloder = dict(batch_size=1)\n")
    code, out = _python_tool("train.py", str(user), "--work-dir", str(tmp_path / "w"), "--cfg-options",
                             "sync_bn=mmcv")  # stops right after the config checks
    assert "did you mean 'train_dataloader'" in out
    return out


def resume_schedule_lengthened(tmp_path):
    from mmengine.logging import MMLogger
    from mmengine.optim import CosineAnnealingLR
    from pc_kd.engine import PortableCheckpointHook

    def cosine(end):
        return CosineAnnealingLR(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), T_max=end, end=end)

    saved = [cosine(10).state_dict()]
    logged = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: logged.append(record.getMessage())
    MMLogger.get_instance("pc_kd_troubleshooting").addHandler(handler)  # the current logger, which print_log uses
    runner = SimpleNamespace(_resume=True, work_dir=str(tmp_path), param_schedulers=[cosine(20)])
    PortableCheckpointHook().after_load_checkpoint(runner, {"param_schedulers": saved})
    runner.param_schedulers = [cosine(10)]  # the same schedule: nothing to say
    PortableCheckpointHook().after_load_checkpoint(runner, {"param_schedulers": saved})
    assert len(logged) == 1, logged
    return logged[0]


def config_top_level_key(tmp_path):
    from mmengine.config import Config
    return _raise(lambda: check_config_keys(Config(dict(train_dataloder=dict())), "my_config.py"))


def cfg_options_format(tmp_path):
    code, out = _python_tool("train.py", LIDAR_CONFIG, "--cfg-options", "max_iters")
    assert code == 2 and "Traceback" not in out and "usage:" in out
    return out


def cfg_options_top_level(tmp_path):
    return _raise(lambda: load_checked_config(LIDAR_CONFIG, {"train_cfgg.max_iters": 3}))


def cfg_options_near_miss(tmp_path):
    code, out = _python_tool("train.py", LIDAR_CONFIG, "--work-dir", str(tmp_path / "w"), "--cfg-options",
                             "train_dataloader.batch_sise=1")
    assert code == 1 and "Traceback" not in out and "did you mean 'batch_size'" in out
    assert not (tmp_path / "w").exists()  # nothing written before the check
    message = _raise(lambda: load_checked_config(LIDAR_CONFIG, {"train_cfg.max_iter": 2}))
    assert "did you mean 'max_iters'" in message
    return out


def cfg_options_no_argument(tmp_path):
    message = _raise(lambda: load_checked_config(LIDAR_CONFIG, {"model.head.foo_bar": 2}))
    assert "reg_radius" in message  # the valid arguments are listed
    load_checked_config(LIDAR_CONFIG, {"model.head.reg_radius": 0, "optim_wrapper.paramwise_cfg.norm_decay_mult": 0.0,
                                       "my_helper_variable": 1})  # valid keys, new or not, pass
    return message


def cfg_options_list_index(tmp_path):
    return _raise(lambda: load_checked_config(LIDAR_CONFIG, {"train_dataloader.dataset.pipeline.7.type": "X"}))


def checkpoint_not_found(tmp_path):
    return _raise(lambda: load_local_checkpoint(str(tmp_path / "nothing.pth")))


def checkpoint_not_torch(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_text("not a checkpoint at all")
    code, out = _python_tool("test.py", LIDAR_CONFIG, str(garbage))
    assert code == 1 and "Traceback" not in out
    with pytest.raises(CheckpointFileError):
        load_local_checkpoint(str(garbage))
    return out


def checkpoint_allowlist(tmp_path):
    path = tmp_path / "foreign.pth"
    torch.save({"state_dict": {}, "obj": pickle.PickleError("x")}, path)
    return _raise(lambda: load_local_checkpoint(str(path)))


def checkpoint_mismatch(tmp_path):
    other = tmp_path / "other_model.pth"
    torch.save({"state_dict": {"weight": torch.zeros(3, 2)}}, other)
    code, out = _python_tool("test.py", LIDAR_CONFIG, str(other), "--work-dir", str(tmp_path / "w"))
    assert code == 1 and "Traceback" not in out and out.count("\n") < 25, out[-3000:]
    with pytest.raises(CheckpointMismatchError):
        check_state_dict_matches(torch.nn.Linear(2, 2), {"weight": torch.zeros(3, 2)}, "x.pth")
    return out


def resume_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    code, out = _python_tool("train.py", LIDAR_CONFIG, "--work-dir", str(tmp_path / "empty"), "--resume")
    assert code == 1 and "Traceback" not in out and "--resume auto" in out
    assert resume_settings("auto", str(tmp_path / "empty")) == (False, None)  # auto: start when there is nothing
    assert resume_settings(None, str(tmp_path / "empty")) == (False, None)
    return out


def resume_damaged(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    torch.save({"state_dict": {}}, work / "epoch_1.pth")
    (work / "epoch_2.pth").write_bytes(b"\x00" * 64)  # a disk that filled up, a copy cut short
    (work / "last_checkpoint").write_text(str(work / "epoch_2.pth"))
    code, out = _python_tool("train.py", LIDAR_CONFIG, "--work-dir", str(work), "--resume")
    assert code == 1 and "Traceback" not in out
    assert f"resume from it with --resume {work / 'epoch_1.pth'}" in out
    (work / "epoch_1.pth").write_text("also damaged")
    assert "no earlier one is whole: start the run again without --resume" in _raise(
        lambda: resume_settings("latest", str(work)))
    return out


def folder_not_writable(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    code, out = _python_tool("train.py", LIDAR_CONFIG, "--work-dir", str(a_file))
    assert code == 1 and "Traceback" not in out and "it is a file, not a folder" in out
    code, out = _python_tool("test.py", LIDAR_CONFIG, str(ROOT / "checkpoints" / "tinysegnet_synthetic-indoor-2d.pth"),
                             "--work-dir", str(tmp_path / "w"), "--out", str(a_file / "predictions"))
    assert code == 1 and "Traceback" not in out and not (tmp_path / "w").exists()  # stopped before any work
    assert "--out " in out
    return out


def missing_timm(tmp_path):
    import importlib.util
    if importlib.util.find_spec("timm") is not None:
        pytest.skip("timm is installed here: its message cannot be shown")
    code, out = _python_tool("fuse_features.py", "configs/pointdc/pointdc_spconv-unet_resnet50_scannet.py",
                             "--out", str(tmp_path / "f"))
    assert code == 1 and "Traceback" not in out and "pip install torch==" in out and "torchvision==" in out
    return out


def interrupted(tmp_path):
    import signal
    import time
    work = tmp_path / "w"
    args = [sys.executable, str(ROOT / "tools" / "train.py"), INDOOR_CONFIG, "--work-dir", str(work),
            "--cfg-options", f"train_dataloader.dataset.data_root={tmp_path / 'rooms'}",
            "train_dataloader.dataset.num_scenes=2", "train_dataloader.dataset.num_points=2000",
            "train_dataloader.dataset.num_views=1", "default_hooks.logger.interval=1"]
    # SIGINT at its default in the child: under nohup or a background job it is inherited as ignored, and Python
    # then never raises KeyboardInterrupt
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines, start = [], time.time()
    for line in proc.stdout:  # Ctrl-C once training has started
        lines.append(line)
        if "Epoch(train)" in line or time.time() - start > 300:
            break
    proc.send_signal(signal.SIGINT)
    try:
        rest, _ = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("tools/train.py went on for 2 minutes after Ctrl-C (SIGINT)") from None
    out = "".join(lines) + rest
    assert proc.returncode == 130 and "Traceback" not in rest and "KeyboardInterrupt" not in rest, rest[-3000:]
    assert len(rest.strip().splitlines()) <= 3, rest
    return rest


def resume_not_found(tmp_path):
    return _raise(lambda: resume_settings(str(tmp_path / "nope.pth"), str(tmp_path)))


def info_file_missing(tmp_path):
    code, out = _python_tool("train.py", NUSCENES_CONFIG, "--work-dir", str(tmp_path / "w"), "--cfg-options",
                             f"train_dataloader.dataset.data_root={tmp_path / 'nuscenes'}/")
    assert code == 1 and "Traceback" not in out, out[-3000:]
    assert f"python tools/create_infos.py nuscenes --root <nuScenes folder with v1.0-trainval/> --out " \
           f"{tmp_path / 'nuscenes'} --version v1.0-trainval --split train" in out
    # the console is short: no environment, config or hook table (they are in the log file)
    assert "Config:" not in out and "Hooks will be executed" not in out and "System environment" not in out
    assert len(out.splitlines()) < 40, out
    logs = list((tmp_path / "w").rglob("*.log"))
    assert logs and "Config:" in logs[0].read_text()
    return out


def info_file_version(tmp_path):
    from pc_kd.datasets import ScanNetDataset
    info = tmp_path / "scannet_infos_train.pkl"
    info.write_bytes(pickle.dumps({"metainfo": {"info_version": "1.0"}, "data_list": []}))
    return _raise(lambda: ScanNetDataset(ann_file=str(info), data_root=str(tmp_path)))


def points_file_missing(tmp_path):
    from pc_kd.datasets.transforms import LoadPointsFromFile
    return _raise(lambda: LoadPointsFromFile()({"lidar_path": str(tmp_path / "nothing.bin")}))


def dist_train_usage(tmp_path):
    code, out = _tool(["bash", str(ROOT / "tools" / "dist_train.sh")])
    assert code == 2
    return out


def shard_format(tmp_path):
    code, out = _python_tool("fuse_features.py", "configs/pointdc/pointdc_spconv-unet_tinysegnet_synthetic-indoor.py",
                             "--shard", "2/2")
    assert code == 2 and "Traceback" not in out and "usage: fuse_features.py" in out
    return out


def manifest_verify(tmp_path):
    code, out = _python_tool("make_superpoints.py", "configs/supervised/supervised_spconv-unet_none_synthetic-indoor.py",
                             "--out", str(tmp_path / "sp"), "--verify", "--cfg-options",
                             f"train_dataloader.dataset.data_root={tmp_path / 'rooms'}",
                             "train_dataloader.dataset.num_scenes=1", "train_dataloader.dataset.num_points=500",
                             "train_dataloader.dataset.num_views=1")
    assert code == 1 and "1 missing (no file or never recorded as finished): scene" in out
    return out


def sync_bn_value(tmp_path):
    code, out = _python_tool("train.py", LIDAR_CONFIG, "--work-dir", str(tmp_path), "--cfg-options", "sync_bn=mmcv")
    assert code == 1 and "Traceback" not in out
    return out


def amp_needs_cuda(tmp_path):
    code, out = _tool([sys.executable, str(ROOT / "tools" / "train.py"), LIDAR_CONFIG, "--amp", "--work-dir",
                       str(tmp_path / "w")], env_extra={"CUDA_VISIBLE_DEVICES": ""})  # no GPU, on any machine
    assert code == 1 and "Traceback" not in out and not (tmp_path / "w").exists()
    return out


def nuscenes_tables_not_found(tmp_path):
    (tmp_path / "results.json").write_text("{}")
    code, out = _python_tool("eval_nuscenes.py", str(tmp_path / "results.json"), "--root", str(tmp_path))
    assert code == 1 and "Traceback" not in out and out.startswith("error: ")
    return out


def nuscenes_metric_tables(tmp_path):
    from pc_kd.evaluation import NuScenesDetMetric
    return _raise(lambda: NuScenesDetMetric(tables_root=str(tmp_path)))


def _nuscenes_tables(root, version="v1.0-trainval", tables=("sample",)):
    (root / version).mkdir(parents=True)
    for name in tables:
        (root / version / f"{name}.json").write_text("[]")
    return root


def nuscenes_version_folder(tmp_path):
    from pc_kd.datasets.converters.nuscenes import create_nuscenes_infos
    root = _nuscenes_tables(tmp_path / "nuscenes")
    return _raise(lambda: create_nuscenes_infos(root, tmp_path, "v1.0-mini", "val"))


def nuscenes_tables_missing(tmp_path):
    from pc_kd.datasets.converters.nuscenes import create_nuscenes_infos
    root = _nuscenes_tables(tmp_path / "nuscenes", tables=("sample", "scene"))
    return _raise(lambda: create_nuscenes_infos(root, tmp_path, "v1.0-trainval", "val"))


def _fake_tables(tmp_path):
    """A devkit-like object of one scene with one sample whose files are not on disk."""
    from pc_kd.datasets.converters.nuscenes import CAMERAS, TABLES
    root = _nuscenes_tables(tmp_path / "nuscenes", tables=TABLES)
    files = {f"sd_{c}": {"filename": f"samples/{c}/frame.{'jpg' if c.startswith('CAM') else 'pcd.bin'}"}
             for c in ("LIDAR_TOP", *CAMERAS)}
    nusc = SimpleNamespace(scene=[{"token": "s1", "name": "scene-0001"}], dataroot=str(root),
                           sample=[{"token": "a" * 32, "scene_token": "s1", "timestamp": 0,
                                    "data": {c: f"sd_{c}" for c in ("LIDAR_TOP", *CAMERAS)}}],
                           get=lambda table, token: files[token])
    return root, nusc


def nuscenes_scene_unknown(tmp_path):
    from pc_kd.datasets.converters.nuscenes import create_nuscenes_infos
    root, nusc = _fake_tables(tmp_path)
    return _raise(lambda: create_nuscenes_infos(root, tmp_path, "v1.0-trainval", "val", ["scene-0523"], nusc=nusc))


def nuscenes_sample_file_missing(tmp_path):
    from pc_kd.datasets.converters.nuscenes import create_nuscenes_infos
    root, nusc = _fake_tables(tmp_path)
    return _raise(lambda: create_nuscenes_infos(root, tmp_path, "v1.0-trainval", "val", ["scene-0001"], nusc=nusc))


def nuscenes_sweeps_missing(tmp_path):
    from pc_kd.datasets import NuScenesDataset
    (tmp_path / "samples/LIDAR_TOP").mkdir(parents=True)
    (tmp_path / "samples/CAM_FRONT").mkdir(parents=True)
    for name in ("LIDAR_TOP/key.pcd.bin", "CAM_FRONT/key.jpg"):
        (tmp_path / "samples" / name).write_bytes(b"")
    eye = [[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]]
    camera = dict(img_path="key.jpg", cam2img=[[800.0, 0, 800], [0, 800.0, 450], [0, 0, 1]], lidar2cam=eye)
    info = dict(token="t", timestamp=1.0, ego2global=eye, lidar_points=dict(lidar_path="key.pcd.bin", lidar2ego=eye),
                images={"CAM_FRONT": camera}, instances=[], lidar_sweeps=[dict(lidar_points=dict(lidar_path="sweep.pcd.bin",
                                                                              lidar2sensor=eye), timestamp=0.95)])
    (tmp_path / "nuscenes_infos_train.pkl").write_bytes(pickle.dumps({"metainfo": {}, "data_list": [info]}))
    pipeline = [dict(type="LoadPointsFromMultiSweeps", sweeps_num=10)]
    return _raise(lambda: NuScenesDataset(ann_file="nuscenes_infos_train.pkl", data_root=str(tmp_path),
                                          pipeline=pipeline))


def teacher_weights_mismatch(tmp_path):
    from pc_kd.models.backbones.espnetv2 import ESPNetV2Segmentation, ESPNetV2Teacher
    path = tmp_path / "espnetv2_s_1.0_pascal.pth"
    torch.save(ESPNetV2Segmentation(21, (32, 64, 128, 256)).state_dict(), path)
    return _raise(lambda: ESPNetV2Teacher(weights=str(path), width=2.0))


def frame_pose_invalid(tmp_path):
    from pc_kd.experiments.real_teachers import scannet_frames
    (tmp_path / "frames").mkdir()
    np.savetxt(tmp_path / "frames" / "intrinsic_color.txt", np.eye(4))
    (tmp_path / "frames" / "00000.jpg").write_bytes(b"")
    np.savetxt(tmp_path / "frames" / "00000.txt", np.full((4, 4), -np.inf))
    return _raise(lambda: scannet_frames(tmp_path))


def depth_aspect_mismatch(tmp_path):
    from PIL import Image

    from pc_kd.projection.fusion import load_frames
    Image.fromarray(np.zeros((97, 129, 3), np.uint8)).save(tmp_path / "0.jpg")
    Image.fromarray(np.full((36, 64), 1000, np.uint16)).save(tmp_path / "0.png")
    frame = dict(img_path=str(tmp_path / "0.jpg"), cam2world=np.eye(4), cam2img=np.eye(3),
                 depth_path=str(tmp_path / "0.png"))
    return _raise(lambda: load_frames([frame], "scene_a"))


def class_mapping_unknown(tmp_path):
    from pc_kd.experiments.real_nuscenes_points import class_mapping
    from pc_kd.models.backbones.espnetv2 import CITYSCAPES_CLASSES
    return _raise(lambda: class_mapping(CITYSCAPES_CLASSES, {"pedestrian": "pedestrian"}))


TRIGGERS = {name.replace("_", "-"): fn for name, fn in list(globals().items())
            if callable(fn) and getattr(fn, "__module__", None) == __name__ and not name.startswith(("_", "test"))}


def test_every_row_of_the_table_has_a_trigger_and_every_trigger_a_row():
    assert set(_rows()) == set(TRIGGERS)


@pytest.mark.parametrize("row", sorted(_rows()))
def test_the_message_of_each_row_is_what_the_user_sees(row, tmp_path):
    message = TRIGGERS[row](tmp_path)
    assert re.search(_pattern(_rows()[row]), message, re.DOTALL), (row, message[-2000:])


def test_resume_takes_a_checkpoint_written_after_the_last_checkpoint_file(tmp_path):
    """A job killed after writing epoch_<n>.pth but before mmengine named it in last_checkpoint resumes from it."""
    work = tmp_path / "w"
    work.mkdir()
    for name in ("epoch_1.pth", "epoch_2.pth", "epoch_10.pth", "best_miou_epoch_1.pth"):
        torch.save({}, work / name)
    assert resume_settings("latest", str(work)) == (True, str(work / "epoch_10.pth"))  # none named: the newest
    (work / "last_checkpoint").write_text(str(work / "epoch_2.pth"))
    assert resume_settings("latest", str(work)) == (True, str(work / "epoch_10.pth"))  # by number, not by name
    assert resume_settings("auto", str(work)) == (True, str(work / "epoch_10.pth"))
    (work / "epoch_10.pth").unlink()
    assert resume_settings("latest", str(work)) == (True, str(work / "epoch_2.pth"))  # the named one is newest
    torch.save({}, work / "iter_50.pth")  # another kind: last_checkpoint says which run is meant
    assert resume_settings("latest", str(work)) == (True, str(work / "epoch_2.pth"))
    (work / "last_checkpoint").unlink()
    assert resume_settings("auto", str(work)) == (False, None)  # both kinds, nothing named: start afresh


def test_config_errors_are_value_errors_and_name_the_option():
    with pytest.raises(ConfigError, match=r"--cfg-options model.head.reg_radus: model.head has no key 'reg_radus'"):
        load_checked_config(LIDAR_CONFIG, {"model.head.reg_radus": 2})
    assert issubclass(ConfigError, ValueError)
