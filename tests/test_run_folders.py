"""A run folder is the run's own: every shipped schedule's checkpoints load safely (weights_only) for testing and
resuming, a copied run folder resumes from its own files and leaves the original untouched, and a resume that
lengthens the schedule says that the learning rate stays frozen."""
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config

from pc_kd.engine import PortableCheckpointHook, load_local_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "supervised" / "supervised_spconv-unet_none_synthetic-indoor.py"
SCHEDULES = sorted((ROOT / "configs" / "_base_" / "schedules").glob("*.py"))


def _schedule_kinds():
    """One schedule file per distinct (scheduler types, loop type): every kind of state a shipped config saves."""
    kinds = {}
    for path in SCHEDULES:
        cfg = Config.fromfile(str(path))
        key = (tuple(s["type"] for s in cfg.param_scheduler), cfg.train_cfg["type"])
        kinds.setdefault(key, path)
    return sorted(kinds.values())


def _data_options(root):
    small = "num_scenes={n} data_root={root} num_views=1 image_hw=[24,32] num_points=3000"
    opts = ["model.backbone.channels=[8,16,32]", "model.decode_head.in_channels=8", "val_pictures=0"]
    for loader, n in (("train_dataloader", 4), ("val_dataloader", 1), ("test_dataloader", 1)):
        opts += [f"{loader}.dataset.{kv}" for kv in small.format(n=n, root=root).split()]
    return opts


def _run(*args):
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")
    out = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    return out.returncode, out.stdout + out.stderr


def _config_with_schedule(path: Path, schedule: Path) -> Path:
    """The tiny indoor config trained with ``schedule``'s parameter schedulers and loop type, 2 iterations per
    epoch (4 scenes, batch 2): one epoch, or 2 iterations."""
    sched = Config.fromfile(str(schedule))
    lines = [f"_base_ = [{str(CONFIG)!r}]", f"param_scheduler = {sched.param_scheduler!r}"]
    if sched.train_cfg["type"] == "IterBasedTrainLoop":
        lines += ['train_cfg = dict(_delete_=True, type="IterBasedTrainLoop", max_iters=2, val_interval=2)',
                  "default_hooks = dict(checkpoint=dict(by_epoch=False, interval=2))",
                  "log_processor = dict(by_epoch=False)"]
    else:
        lines += ['train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=1, val_interval=1)']
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("schedule", _schedule_kinds(), ids=lambda p: p.stem)
def test_every_shipped_schedule_writes_checkpoints_that_test_and_resume(schedule, tmp_path):
    config = _config_with_schedule(tmp_path / "cfg.py", schedule)
    work, data = tmp_path / "work", tmp_path / "data"
    code, out = _run("tools/train.py", config, "--work-dir", work, "--cfg-options", *_data_options(data))
    assert code == 0, out[-3000:]
    saved = sorted(work.glob("*.pth"))
    assert saved, out[-2000:]
    for ckpt in saved:  # the safe loader reads every checkpoint the run wrote
        state = load_local_checkpoint(str(ckpt), map_location="cpu")
        assert ckpt.name.startswith("best_") or "param_schedulers" in state  # training ones: scheduler states too
    iter_based = any(p.name.startswith("iter_") for p in saved)
    longer = "train_cfg.max_iters=4" if iter_based else "train_cfg.max_epochs=2"
    code, out = _run("tools/train.py", config, "--work-dir", work, "--resume", "--cfg-options", longer,
                     *_data_options(data))
    assert code == 0 and "Traceback" not in out, out[-3000:]
    assert ("resumed epoch: 1, iter: 2" if not iter_based else "resumed epoch: 0, iter: 2") in out, out[-3000:]
    last = work / ("iter_4.pth" if iter_based else "epoch_2.pth")
    logs = set(work.glob("*/*.log"))
    code, out = _run("tools/test.py", config, last, "--cfg-options", *_data_options(data))
    assert code == 0 and "Traceback" not in out, out[-3000:]
    assert len(set(work.glob("*/*.log")) - logs) == 1, "the test log goes beside the checkpoint"


def _lengthened_configs(tmp_path):
    """Two configs whose cosine schedule ends with the run: 1 epoch, and the same lengthened to 2."""
    paths = []
    for epochs in (1, 2):
        path = tmp_path / f"cosine_{epochs}e.py"
        path.write_text(f"_base_ = [{str(CONFIG)!r}]\nmax_epochs = {epochs}\n"
                        "param_scheduler = [dict(type='CosineAnnealingLR', T_max=max_epochs, eta_min=1e-5, "
                        "by_epoch=True, begin=0, end=max_epochs, convert_to_iter_based=True)]\n"
                        "train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)\n")
        paths.append(path)
    return paths


@pytest.mark.slow
def test_a_copied_run_folder_resumes_from_its_own_files_and_leaves_the_original_alone(tmp_path):
    one_epoch, two_epochs = _lengthened_configs(tmp_path)
    original, copy, data = tmp_path / "sup1", tmp_path / "sup2", tmp_path / "data"
    code, out = _run("tools/train.py", one_epoch, "--work-dir", original, "--cfg-options", *_data_options(data))
    assert code == 0, out[-3000:]
    assert str(original) in (original / "last_checkpoint").read_text()  # mmengine writes an absolute path
    assert list(original.glob("best_*.pth"))
    shutil.copytree(original, copy)
    (original / "epoch_1.pth").write_bytes(b"the original's file: reading it would fail")
    before = {p.relative_to(original): p.read_bytes() for p in original.rglob("*") if p.is_file()}

    code, out = _run("tools/train.py", two_epochs, "--work-dir", copy, "--resume", "--cfg-options",
                     *_data_options(data))
    assert code == 0 and "Traceback" not in out, out[-3000:]
    assert "resumed epoch: 1" in out
    assert "outside this run's work dir" in out or "outside this work dir" in out
    # lengthening the schedule on --resume: said when it happens
    assert "CosineAnnealingLR ends at iteration 2, this config's at 4" in out, out[-3000:]
    after = {p.relative_to(original): p.read_bytes() for p in original.rglob("*") if p.is_file()}
    assert after == before  # nothing of the original was read into, rewritten or deleted
    assert (copy / "epoch_2.pth").is_file()


def test_a_resume_takes_the_best_checkpoint_inside_its_own_work_dir(tmp_path):
    hook = PortableCheckpointHook()
    runner = SimpleNamespace(_resume=True, work_dir=str(tmp_path / "copy"), param_schedulers=None)
    checkpoint = {"message_hub": {"runtime_info": {"best_ckpt": "/elsewhere/run/best_mIoU_epoch_3.pth",
                                                   "best_score": 0.5, "last_ckpt": "/elsewhere/run/epoch_3.pth"}}}
    hook.after_load_checkpoint(runner, checkpoint)
    info = checkpoint["message_hub"]["runtime_info"]
    assert info["best_ckpt"] == str(tmp_path / "copy" / "best_mIoU_epoch_3.pth")
    assert info["best_score"] == 0.5
    runner._resume = False  # load_from (weights only) reads nothing of the message hub
    checkpoint["message_hub"]["runtime_info"]["best_ckpt"] = "/elsewhere/x.pth"
    hook.after_load_checkpoint(runner, checkpoint)
    assert checkpoint["message_hub"]["runtime_info"]["best_ckpt"] == "/elsewhere/x.pth"


def test_scheduler_functions_are_left_out_of_the_saved_state_and_the_file_loads_safely(tmp_path):
    from mmengine.optim import OneCycleLR

    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-4)
    scheduler = OneCycleLR(optimizer, eta_max=1e-3, total_steps=10)
    checkpoint = {"param_schedulers": [scheduler.state_dict()], "message_hub": {}}
    assert any(callable(v) for v in checkpoint["param_schedulers"][0].values())  # what mmengine would pickle
    PortableCheckpointHook().before_save_checkpoint(None, checkpoint)
    torch.save(checkpoint, tmp_path / "c.pth")
    state = load_local_checkpoint(str(tmp_path / "c.pth"))["param_schedulers"][0]
    resumed = OneCycleLR(optimizer, eta_max=1e-3, total_steps=10)
    resumed.load_state_dict(state)
    assert resumed.anneal_func.__name__ == scheduler.anneal_func.__name__  # the constructor's choice stays
    assert {k: v for k, v in resumed.state_dict().items() if not callable(v)} == state
