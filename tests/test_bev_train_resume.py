"""The synthetic-driving LiDAR and camera detector configs train through tools/train.py, resume after a
kill -9 from the last checkpoint (the LiDAR one under ``--amp bfloat16``, CPU autocast), and tools/test.py scores
them with the nuScenes metric."""
import json
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import train_until_then_kill

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"lidar": "supervised_centerpoint-pillar_none_synthetic-driving.py",
           "camera": "supervised_lss-camera_none_synthetic-driving.py"}
TOTAL_ITERS = 12
pytestmark = pytest.mark.slow


def _options(data_root, max_iters, work):
    opts = [f"train_cfg.max_iters={max_iters}", "train_cfg.val_interval=1000", "train_dataloader.batch_size=2",
            "default_hooks.checkpoint.interval=4", "default_hooks.checkpoint.max_keep_ckpts=-1",
            "default_hooks.logger.interval=1", "log_processor.window_size=1",
            f"test_evaluator.jsonfile_prefix={work}/results"]
    for loader, n in (("train_dataloader", 4), ("val_dataloader", 2), ("test_dataloader", 2)):
        opts += [f"{loader}.dataset.{kv}" for kv in
                 (f"num_samples={n}", f"data_root={data_root}", "image_hw=[48,96]", "num_objects=12")]
    return opts


def _losses(log_text):
    return [(int(i), float(v)) for i, v in re.findall(r"Iter\(train\)\s+\[\s*(\d+)/\d+\].*?\sloss: ([0-9.]+)", log_text)]


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_detector_trains_is_killed_resumes_and_tests(tmp_path, kind):
    config = ROOT / "configs" / "supervised" / CONFIGS[kind]
    work, data = tmp_path / "work", tmp_path / "data"
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "tools/train.py", str(config), "--work-dir", str(work), "--cfg-options",
           *_options(data, 200, work)]
    first_log = train_until_then_kill(cmd, ROOT, work / "iter_4.pth", timeout_s=300)
    done = sorted(int(p.stem.split("_")[1]) for p in work.glob("iter_*.pth"))
    assert done and done[-1] < 200
    for ckpt in work.glob("iter_*.pth"):
        torch.load(ckpt, map_location="cpu", weights_only=False)

    # the LiDAR detector resumes its float32 checkpoint under CPU bfloat16 autocast (BFloat16OptimWrapper)
    amp = ["--amp", "bfloat16"] if kind == "lidar" else []
    resumed = subprocess.run([sys.executable, "tools/train.py", str(config), "--work-dir", str(work), "--resume",
                              *amp, "--cfg-options", *_options(data, TOTAL_ITERS, work),
                              f"train_cfg.val_interval={TOTAL_ITERS}"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=600)
    log = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, log[-4000:]
    # the console: progress and results; the config dump and mmengine's file-client notices only in the log file
    assert "Config:" not in log and '"FileClient" will be deprecated' not in log
    assert ("AMP: autocast bfloat16 on " in log) == (kind == "lidar"), log[-3000:]
    assert list(work.rglob("events.out.tfevents.*"))  # the scalars reach TensorBoard ([vis] extra)
    pictures = sorted(p.name for p in (work / "pictures" / f"iter_{TOTAL_ITERS}").glob("*.png"))
    cameras = [p for p in pictures if p.endswith("_cameras.png")]  # the camera model's images with boxes
    assert len(pictures) - len(cameras) == 2 and len(cameras) == (2 if kind == "camera" else 0), pictures
    match = re.search(r"resumed epoch: \d+, iter: (\d+)", log)
    assert match and int(match.group(1)) == done[-1], log[-3000:]
    losses = _losses(log)
    assert losses and losses[0][0] == done[-1] + 1  # continues after the checkpoint, not from iteration 1
    assert losses[0][1] < _losses(first_log)[0][1]  # weights and optimiser state came back
    final = torch.load(work / f"iter_{TOTAL_ITERS}.pth", map_location="cpu", weights_only=False)
    assert final["meta"]["iter"] == TOTAL_ITERS
    best = list(work.glob("best_nuscenes_mAP_iter_*.pth"))  # save_best="auto" on the validation mAP
    assert len(best) == 1, sorted(p.name for p in work.iterdir())

    tested = subprocess.run([sys.executable, "tools/test.py", str(config), str(work / f"iter_{TOTAL_ITERS}.pth"),
                             "--work-dir", str(work), "--out", str(work / "pred"), "--show-dir", str(work / "show"),
                             "--cfg-options",
                             *_options(data, 1, work)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    out = tested.stdout + tested.stderr
    assert tested.returncode == 0, out[-4000:]
    m = re.search(r"Iter\(test\).*nuscenes/mAP: ([0-9.]+)\s+nuscenes/NDS: ([0-9.]+)", out)
    assert m and 0 <= float(m.group(1)) <= 1 and 0 <= float(m.group(2)) <= 1, out[-3000:]
    results = json.loads((work / "results" / "results_nusc.json").read_text())
    assert results["meta"]["use_camera"] == (kind == "camera") and len(results["results"]) == 2
    # --out: one .npz per sample with the boxes the metric scored, and the metrics
    saved = sorted((work / "pred").glob("*.npz"))
    assert len(saved) == 2
    for path in saved:
        pred = np.load(path)
        assert pred["boxes"].shape[1] == 9 and len(pred["boxes"]) == len(pred["scores"]) == len(pred["labels"])
    shown = sorted(p.stem for p in (work / "show").glob("*.png"))  # --show-dir: BEV (+ camera) pictures
    assert [s for s in shown if not s.endswith("_cameras")] == [p.stem for p in saved]
    assert [s for s in shown if s.endswith("_cameras")] == ([p.stem + "_cameras" for p in saved]
                                                             if kind == "camera" else [])
    assert sum(len(np.load(p)["boxes"]) for p in saved) == sum(len(v) for v in results["results"].values())
    assert json.loads((work / "pred" / "metrics.json").read_text())["nuscenes/mAP"] == pytest.approx(float(m.group(1)),
                                                                                                     abs=1e-4)


def test_demo_bev_trains_scores_and_draws(tmp_path):
    work = tmp_path / "demo"
    opts = _options(tmp_path / "data", 3, work)
    opts = [o for o in opts if not o.startswith(("default_hooks.checkpoint.interval", "test_evaluator"))]
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")
    out = subprocess.run([sys.executable, "tools/demo_bev.py", "--work-dir", str(work), "--distill", "lidar_to_camera",
                          "--heldout-frames", "2", "--cfg-options", *opts],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    for row in ("| lidar |", "| lidar_motion |", "| camera |", "| fusion |", "| random boxes |",
                "| ground truth boxes |"):
        assert row in log
    assert re.search(r"camera: final depth loss [0-9.]+, bev_pool share of a training step [0-9.]+ %", log)
    distill_row = r"\| lidar_to_camera \(camera <- lidar\) \|.*\| [+-][0-9.]+ \| [01] of 1 \| [0-9]+ % / [0-9.]+ % \|"
    assert len(re.findall(distill_row, log)) == 2  # on the validation frames, then on the held-out ones
    assert "scores on 2 synthetic held-out test frames" in log and "UniDistill paths on the same 2 frames" in log
    results = json.loads((work / "results.json").read_text())
    for frames in ("val", "heldout"):
        assert results["reference"][frames]["ground truth"]["mAP"] == pytest.approx(1.0)
        assert results["reference"][frames]["random"]["mAP"] < 0.15  # a floor: 4 m matches happen by chance
    for runs in [*results["detectors"].values(), *results["distillation"].values()]:
        assert set(runs[0]["heldout"]) == {"mAP", "NDS", "mATE", "mASE", "mAOE", "mAVE", "mAAE"}
    with open(tmp_path / "data" / "synthetic_driving_infos_test.pkl", "rb") as f:
        heldout = {info["token"] for info in pickle.load(f)["data_list"]}
    for split in ("train", "val"):
        with open(tmp_path / "data" / f"synthetic_driving_infos_{split}.pkl", "rb") as f:
            assert heldout.isdisjoint(info["token"] for info in pickle.load(f)["data_list"]), split
    from PIL import Image

    assert results["distillation"]["lidar_to_camera"][0]["seed"] == 0
    for name in ("bev_lidar", "cameras_camera", "bev_fusion", "cameras_fusion", "distill_lidar_to_camera"):
        with Image.open(work / f"{name}.png") as img:
            assert img.size[0] > 500 and img.size[1] > 300


def test_demo_bev_takes_the_same_training_batch_every_time_it_is_asked():
    """The demo times a step on one training batch per run; the runner's loader (an InfiniteSampler) yields one
    batch per ``iter()`` only once, so the batch comes from the dataset itself."""
    from types import SimpleNamespace

    from mmengine.dataset import InfiniteSampler, pseudo_collate
    from torch.utils.data import DataLoader

    from pc_kd.experiments.bev import first_train_batch

    frames = [dict(sample_idx=i, points=torch.full((i + 1, 4), float(i))) for i in range(5)]
    loader = DataLoader(frames, batch_size=3, sampler=InfiniteSampler(frames, seed=0), collate_fn=pseudo_collate)
    runner = SimpleNamespace(train_dataloader=loader)
    for _ in range(3):
        batch = first_train_batch(runner)
        assert batch["sample_idx"] == [0, 1, 2]
        assert [len(p) for p in batch["points"]] == [1, 2, 3]
