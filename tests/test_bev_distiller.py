"""BEVDistiller on the synthetic-driving detectors: a LiDAR teacher loaded from its checkpoint stays frozen, in
eval mode and out of the student's checkpoints while a camera student trains (every loss term, the two options
too); a student that is the teacher gets zero distillation losses; a student given by its config starts from the
baseline's weights; a distillation run resumed from a checkpoint continues the uninterrupted run's loss curve; bad
teacher input (checkpoint, grid, channels, rot maps, weights, camera rig) is named."""
import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from pc_kd.experiments.bev import distiller_options
from pc_kd.registry import DATASETS, MODELS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "supervised"
LIDAR = str(CONFIGS / "supervised_centerpoint-pillar_none_synthetic-driving.py")
CAMERA = str(CONFIGS / "supervised_lss-camera_none_synthetic-driving.py")
LIDAR_MOTION = str(CONFIGS / "supervised_centerpoint-pillar-motion_none_synthetic-driving.py")
WEIGHTS = dict(feature=100.0, relation=40.0, response=10.0)  # UniDistill's LiDAR -> camera weights
ALL_TERMS = dict(WEIGHTS, dense=10.0, crosskd=10.0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A small synthetic-driving split, a camera batch from it and a LiDAR teacher checkpoint."""
    init_default_scope("pc_kd")
    root = tmp_path_factory.mktemp("driving")  # the dataset generates its 2 frames on first use
    cfg = Config.fromfile(CAMERA)
    dataset = copy.deepcopy(cfg.train_dataloader.dataset)
    dataset.update(data_root=str(root), num_samples=2, image_hw=(48, 96), num_objects=12)
    batch = pseudo_collate([DATASETS.build(dataset)[i] for i in range(2)])
    torch.manual_seed(0)
    teacher = MODELS.build(Config.fromfile(LIDAR).model)
    ckpt = root / "teacher.pth"
    torch.save({"state_dict": teacher.state_dict(), "meta": {}}, ckpt)
    return dict(batch=batch, ckpt=str(ckpt), camera=Config.fromfile(CAMERA).model.to_dict(),
                lidar=Config.fromfile(LIDAR).model.to_dict())


def test_camera_student_trains_while_the_lidar_teacher_stays_frozen_in_eval_and_out_of_checkpoints(setup):
    distiller = MODELS.build(dict(type="BEVDistiller", student=setup["camera"], teacher=LIDAR,
                                  teacher_ckpt=setup["ckpt"], weights=ALL_TERMS))
    saved = torch.load(setup["ckpt"], weights_only=True)["state_dict"]
    teacher_params = {id(p) for p in distiller.teacher.parameters()}
    assert not teacher_params & {id(p) for p in distiller.parameters()}
    optim = torch.optim.AdamW(distiller.parameters(), lr=1e-3)
    distiller.train()
    for _ in range(3):
        data = distiller.data_preprocessor(setup["batch"], True)
        losses = distiller(**data, mode="loss")
        assert {"loss_distill_feature", "loss_distill_relation", "loss_distill_response_cls",
                "loss_distill_response_reg", "loss_distill_dense", "loss_distill_crosskd_cls",
                "loss_distill_crosskd_reg", "loss_depth", "loss_heatmap_0"} <= set(losses)
        assert all(torch.isfinite(v) for v in losses.values()) and float(losses["loss_distill_feature"]) > 0
        optim.zero_grad()
        sum(losses.values()).backward()
        optim.step()
        assert not distiller.teacher.training and distiller.student.training
    for name, value in distiller.teacher.state_dict().items():
        torch.testing.assert_close(value, saved[name], atol=0, rtol=0, msg=name)  # weights and BN statistics
    assert all(p.grad is None for p in distiller.teacher.parameters())
    keys = list(distiller.state_dict())
    assert keys and all(k.startswith(("student.", "adapters.", "data_preprocessor.")) for k in keys), keys[:5]
    distiller.eval()
    data = distiller.data_preprocessor(setup["batch"], False)
    samples = distiller(**data, mode="predict")
    assert len(samples) == 2 and "pred_instances_3d" in samples[0]


def test_step_parts_time_the_losses_alone_with_their_gradients_stopping_at_the_outputs(setup):
    distiller = MODELS.build(dict(type="BEVDistiller", student=setup["camera"], teacher=LIDAR,
                                  teacher_ckpt=setup["ckpt"], weights=dict(WEIGHTS, dense=10.0))).train()
    data = distiller.data_preprocessor(setup["batch"], True)
    parts = distiller.step_parts(data["inputs"], data["data_samples"])
    assert set(parts) == {"student", "teacher", "full", "losses"}
    parts["losses"]()  # the terms' forward and backward: the adapters learn, the detectors see no gradient
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in distiller.adapters.parameters())
    assert all(p.grad is None for p in distiller.student.parameters())
    parts["full"]()  # the whole step reaches the student too
    assert next(distiller.student.head.parameters()).grad is not None
    assert all(p.grad is None for p in distiller.teacher.parameters())


@pytest.mark.parametrize("t_temp", [1.0, 2.0, 3.0])
def test_a_student_that_is_its_teacher_gets_zero_distillation_losses(setup, t_temp):
    """Every term but UniDistill's response cls is 0 at any temperature (CrossKD reads both heatmaps at t_temp);
    the response cls softens the teacher's heatmap alone, so it is 0 at t_temp = 1 only."""
    distiller = MODELS.build(dict(type="BEVDistiller", student=setup["lidar"], teacher=setup["lidar"],
                                  teacher_ckpt=setup["ckpt"], weights=ALL_TERMS, adapter=None, t_temp=t_temp))
    distiller.student.load_state_dict(distiller.teacher.state_dict())
    distiller.eval()
    data = distiller.data_preprocessor(setup["batch"], False)
    inputs = data["inputs"]
    boxes = [s.gt_instances_3d.bboxes_3d.tensor for s in data["data_samples"]]
    assert sum(len(b) for b in boxes) > 0
    with torch.no_grad():
        losses = distiller.distill_losses(distiller.student.extract(inputs), distiller.teacher.extract(inputs), boxes)
    softened = losses.pop("loss_distill_response_cls")
    assert len(losses) == 6 and all(float(v) < 1e-6 for v in losses.values()), losses
    assert (float(softened) < 1e-6) == (t_temp == 1.0), float(softened)


def test_crosskd_reaches_the_student_through_the_frozen_teacher_head(setup):
    distiller = MODELS.build(dict(type="BEVDistiller", student=setup["camera"], teacher=LIDAR,
                                  teacher_ckpt=setup["ckpt"], weights=dict(crosskd=1.0)))
    distiller.train()
    data = distiller.data_preprocessor(setup["batch"], True)
    feats = distiller.student.extract(data["inputs"])
    with torch.no_grad():
        teacher_feats = distiller.teacher.extract(data["inputs"])
    boxes = [s.gt_instances_3d.bboxes_3d.tensor for s in data["data_samples"]]
    losses = distiller.distill_losses(feats, teacher_feats, boxes)
    assert set(losses) == {"loss_distill_crosskd_cls", "loss_distill_crosskd_reg"}
    sum(losses.values()).backward()
    assert distiller.adapters["bev_high"].weight.grad.abs().sum() > 0
    assert next(distiller.student.backbone.stages.parameters()).grad.abs().sum() > 0  # through the neck and backbone
    assert distiller.student.head.shared_conv[0].weight.grad is None  # the student's own head is not used
    assert all(p.grad is None for p in distiller.teacher.parameters())


def test_a_teacher_with_a_motion_cue_distils_into_a_camera_student(setup, tmp_path):
    """The teacher's head reads its neck output and its motion cue; the adapters map to the neck's channels, and
    CrossKD passes the teacher's motion cue beside the student's adapted map to the teacher's head."""
    torch.manual_seed(0)
    teacher = MODELS.build(Config.fromfile(LIDAR_MOTION).model)
    ckpt = tmp_path / "teacher_motion.pth"
    torch.save({"state_dict": teacher.state_dict(), "meta": {}}, ckpt)
    distiller = MODELS.build(dict(type="BEVDistiller", student=setup["camera"], teacher=LIDAR_MOTION,
                                  teacher_ckpt=str(ckpt), weights=ALL_TERMS))
    assert distiller.adapters["bev_high"].out_channels == 96  # not the head's 99
    distiller.train()
    data = distiller.data_preprocessor(setup["batch"], True)
    losses = distiller(**data, mode="loss")
    assert {"loss_distill_crosskd_cls", "loss_distill_feature"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert distiller.adapters["bev_high"].weight.grad.abs().sum() > 0


def test_a_student_given_by_its_config_starts_from_the_baseline_weights(setup):
    torch.manual_seed(3)
    baseline = MODELS.build(Config.fromfile(CAMERA).model)
    torch.manual_seed(3)
    distiller = MODELS.build(dict(type="BEVDistiller", student=CAMERA, teacher=LIDAR, teacher_ckpt=setup["ckpt"]))
    student = distiller.student.state_dict()
    assert student.keys() == baseline.state_dict().keys()
    for name, value in baseline.state_dict().items():
        torch.testing.assert_close(student[name], value, atol=0, rtol=0, msg=name)


def test_every_weight_zero_trains_the_student_exactly_as_its_baseline_trains(setup):
    """What the paired comparisons rest on: with the same seed, data and optimizer, a distiller whose weights are
    all 0 updates its student bit for bit as the baseline detector updates itself (the teacher's forward, its
    no_grad and the adapters change nothing), so a paired difference is the distillation terms' alone."""
    def train(model):
        optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        model.train()
        for _ in range(3):
            data = model.data_preprocessor(setup["batch"], True)
            optim.zero_grad()
            sum(model(**data, mode="loss").values()).backward()
            optim.step()
        return model

    torch.manual_seed(5)
    baseline = train(MODELS.build(Config.fromfile(CAMERA).model)).state_dict()
    torch.manual_seed(5)
    distiller = train(MODELS.build(dict(type="BEVDistiller", student=CAMERA, teacher=LIDAR, teacher_ckpt=setup["ckpt"],
                                        weights=dict(feature=0.0, relation=0.0, response=0.0))))
    student = distiller.student.state_dict()
    for name, value in baseline.items():  # weights and BatchNorm statistics
        torch.testing.assert_close(student[name], value, atol=0, rtol=0, msg=name)


def test_every_demo_path_builds_the_distiller_it_names(setup, demo_bev):
    """``tools/demo_bev.py`` trains its detectors for an hour before the first distillation path: a path whose
    arguments do not fit BEVDistiller must fail here instead. Each path's config with its arguments merged as the
    demo merges them builds a distiller carrying those arguments; the fusion -> LiDAR and camera -> LiDAR configs
    read the teacher's heatmap at temperature 1 and their ``_t2`` paths at UniDistill's 2, with the same weights."""
    built = {}
    for path, (config, student, teacher, arguments) in demo_bev.DISTILL.items():
        cfg = Config.fromfile(config)
        cfg.merge_from_dict(distiller_options(arguments))
        cfg.model.teacher_ckpt = None
        assert cfg.model.student == str(demo_bev.DETECTORS[student].relative_to(ROOT)), path
        assert cfg.model.teacher == str(demo_bev.DETECTORS[teacher].relative_to(ROOT)), path
        distiller = MODELS.build(cfg.model)
        for key, value in (arguments or {}).items():
            got = {k: w for k, w in distiller.weights.items() if w} if key == "weights" else getattr(distiller, key)
            assert got == ({k: w for k, w in value.items() if w} if key == "weights" else value), (path, key)
        built[path] = distiller
    for path in ("fusion_to_lidar", "camera_to_lidar"):
        assert built[path].t_temp == 1.0 and built[f"{path}_t2"].t_temp == 2.0, path
        assert built[path].weights == built[f"{path}_t2"].weights, path


def test_bad_teacher_input_is_named(setup, tmp_path):
    state = torch.load(setup["ckpt"], weights_only=True)["state_dict"]
    state.pop("head.shared_conv.0.weight")
    broken = tmp_path / "broken.pth"
    torch.save({"state_dict": state}, broken)
    with pytest.raises(ValueError, match=r"broken.pth does not match.*head.shared_conv.0.weight"):
        MODELS.build(dict(type="BEVDistiller", student=setup["camera"], teacher=LIDAR, teacher_ckpt=str(broken)))
    with pytest.raises(KeyError, match=r"\['feat'\] name no loss"):
        MODELS.build(dict(type="BEVDistiller", student=setup["camera"], teacher=LIDAR, weights=dict(feat=1.0)))
    other_grid = copy.deepcopy(setup["lidar"])
    other_grid["head"]["point_cloud_range"] = [-40.0, -40.0, -5.0, 40.0, 40.0, 3.0]
    with pytest.raises(ValueError, match=r"student's BEV grid .*\(80, 80\) cells.* teacher's .*\(100, 100\) cells"):
        MODELS.build(dict(type="BEVDistiller", student=setup["camera"], teacher=other_grid))
    with pytest.raises(ValueError, match="channels"):
        MODELS.build(dict(type="BEVDistiller", student=setup["camera"], teacher=LIDAR, adapter=None))
    axis_only = copy.deepcopy(setup["lidar"])  # its car rot map holds (sin 2 yaw, cos 2 yaw), the camera's (sin, cos)
    axis_only["head"]["tasks"][0]["yaw_symmetry"] = 2
    with pytest.raises(ValueError, match=r"student's rot maps hold yaw x \[1, 1, 1, 1, 2\] per task, the teacher's "
                                         r"yaw x \[2, 1, 1, 1, 2\]"):
        MODELS.build(dict(type="BEVDistiller", student=setup["camera"], teacher=axis_only))
    # a camera teacher trained on 112 x 200 images shown the batch's 48 x 96 ones
    camera_teacher = MODELS.build(Config.fromfile(CAMERA).model)
    camera_ckpt = tmp_path / "camera.pth"
    torch.save({"state_dict": camera_teacher.state_dict()}, camera_ckpt)
    distiller = MODELS.build(dict(type="BEVDistiller", student=setup["lidar"], teacher=CAMERA,
                                  teacher_ckpt=str(camera_ckpt)))
    data = distiller.data_preprocessor(setup["batch"], True)
    with pytest.raises(ValueError, match=r"supervised_lss-camera_none_synthetic-driving.py\) was trained on img_hw "
                                         r"\[112, 200\], the samples have \[48, 96\]; camera rigs differ"):
        distiller(**data, mode="loss")
    # the training config a Runner checkpoint records wins over the config file: this teacher saw 48 x 96
    trained = Config.fromfile(CAMERA)
    trained.train_dataloader.dataset.image_hw = (48, 96)
    torch.save({"state_dict": camera_teacher.state_dict(), "meta": {"cfg": trained.pretty_text}}, camera_ckpt)
    distiller = MODELS.build(dict(type="BEVDistiller", student=setup["lidar"], teacher=CAMERA,
                                  teacher_ckpt=str(camera_ckpt)))
    assert torch.isfinite(sum(distiller(**data, mode="loss").values()))


def _losses(log_text):
    return {int(i): float(v) for i, v in re.findall(r"Iter\(train\)\s+\[\s*(\d+)/\d+\].*?\sloss: ([0-9.]+)", log_text)}


@pytest.mark.slow
def test_a_resumed_distillation_run_continues_the_same_loss_curve(setup, tmp_path):
    config = ROOT / "configs" / "unidistill" / "unidistill_lss-camera_centerpoint-pillar_synthetic-driving.py"
    data_root = Path(setup["ckpt"]).parent

    def train(work, max_iters, resume=False):
        opts = [f"model.teacher_ckpt={setup['ckpt']}", f"train_cfg.max_iters={max_iters}",
                "train_cfg.val_interval=1000", "default_hooks.checkpoint.interval=3",
                "default_hooks.logger.interval=1", "log_processor.window_size=1"]
        opts += [f"train_dataloader.dataset.{kv}" for kv in
                 ("num_samples=2", f"data_root={data_root}", "image_hw=[48,96]", "num_objects=12")]
        resume_flag = ["--resume"] if resume else []
        cmd = [sys.executable, "tools/train.py", str(config), "--work-dir", str(work), *resume_flag, "--cfg-options",
               *opts]
        out = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="2"), capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
        return _losses(out.stdout + out.stderr)

    straight = train(tmp_path / "straight", 6)
    first = train(tmp_path / "split", 3)
    resumed = train(tmp_path / "split", 6, resume=True)
    assert sorted(straight) == list(range(1, 7)) and sorted(resumed) == [4, 5, 6]
    for i in (1, 2, 3):
        assert first[i] == pytest.approx(straight[i], rel=1e-4)
    for i in (4, 5, 6):
        assert resumed[i] == pytest.approx(straight[i], rel=1e-3), (i, resumed, straight)
    ckpt = torch.load(tmp_path / "split" / "iter_6.pth", map_location="cpu", weights_only=False)
    assert not any(k.startswith("teacher") for k in ckpt["state_dict"])
