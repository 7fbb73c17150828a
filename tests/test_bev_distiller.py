"""BEVDistiller on the synthetic-driving detectors: a LiDAR teacher loaded from its checkpoint stays frozen, in
eval mode and out of the student's checkpoints while a camera student trains; a student that is the teacher
gets zero distillation losses; bad teacher input is named."""
import copy
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from pc_kd.registry import DATASETS, MODELS

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "supervised"
LIDAR = str(CONFIGS / "supervised_centerpoint-pillar_none_synthetic-driving.py")
CAMERA = str(CONFIGS / "supervised_lss-camera_none_synthetic-driving.py")
WEIGHTS = dict(feature=100.0, relation=40.0, response=10.0)  # UniDistill's LiDAR -> camera weights


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
                                  teacher_ckpt=setup["ckpt"], weights=WEIGHTS))
    saved = torch.load(setup["ckpt"], weights_only=True)["state_dict"]
    teacher_params = {id(p) for p in distiller.teacher.parameters()}
    assert not teacher_params & {id(p) for p in distiller.parameters()}
    optim = torch.optim.AdamW(distiller.parameters(), lr=1e-3)
    distiller.train()
    for _ in range(3):
        data = distiller.data_preprocessor(setup["batch"], True)
        losses = distiller(**data, mode="loss")
        assert {"loss_distill_feature", "loss_distill_relation", "loss_distill_response_cls",
                "loss_distill_response_reg", "loss_depth", "loss_heatmap_0"} <= set(losses)
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


def test_a_student_that_is_its_teacher_gets_zero_distillation_losses(setup):
    distiller = MODELS.build(dict(type="BEVDistiller", student=setup["lidar"], teacher=setup["lidar"],
                                  teacher_ckpt=setup["ckpt"], weights=WEIGHTS, adapter=None,
                                  t_temp=1.0))  # the default 2 softens the teacher's heatmap on purpose
    distiller.student.load_state_dict(distiller.teacher.state_dict())
    distiller.eval()
    data = distiller.data_preprocessor(setup["batch"], False)
    inputs = data["inputs"]
    boxes = [s.gt_instances_3d.bboxes_3d.tensor for s in data["data_samples"]]
    assert sum(len(b) for b in boxes) > 0
    with torch.no_grad():
        losses = distiller.distill_losses(distiller.student.extract(inputs), distiller.teacher.extract(inputs), boxes)
    assert len(losses) == 4 and all(float(v) < 1e-6 for v in losses.values()), losses


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
