"""A 2D student in the Runner: the pseudo-label image dataset, the image preprocessor, ImageSegmentor and the
Hungarian metric on pixels, each against an independent computation; then tools/train.py on the shipped config."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import init_default_scope
from mmengine.structures import BaseDataElement
from PIL import Image

from pc_kd.engine.checkpoint import CheckpointMismatchError
from pc_kd.evaluation import HungarianSegMetric, hungarian_miou
from pc_kd.experiments.drive_segment import Frame, write_pseudo_label_dataset
from pc_kd.models.segmentors.image_segments import normalise_images, sliding_window_logits
from pc_kd.registry import DATASETS, MODELS

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "drive_and_segment" / "drive-segment-student_tinysegnet_synthetic-driving.py"
HW = (21, 30)  # odd sizes
PIPELINE = [dict(type="LoadImageWithTargets"), dict(type="PackImageSegInputs")]


def _frames(count, seed):
    g = torch.Generator().manual_seed(seed)
    return [Frame(images=torch.rand(2, 3, *HW, generator=g), classes=torch.randint(0, 6, (2, *HW), generator=g),
                  points=np.zeros((0, 5)), lidar2img=torch.eye(4).repeat(2, 1, 1)) for _ in range(count)]


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("pseudo_labels")
    train, test = _frames(3, 0), _frames(2, 1)
    targets = torch.randint(0, 5, (6, *HW), generator=torch.Generator().manual_seed(2))
    targets[0, :4] = 255  # unlabelled pixels
    write_pseudo_label_dataset(out, train, targets, test, 5, "random ids", log=lambda *_: None)
    return out, train, test, targets


def _dataset(root, ann_file, test_mode=False):
    init_default_scope("pc_kd")
    return DATASETS.build(dict(type="ImageSegmentationDataset", data_root=str(root), ann_file=ann_file,
                               pipeline=PIPELINE, test_mode=test_mode))


def test_written_dataset_reads_back_what_was_written(dataset_dir):
    root, train, test, targets = dataset_dir
    ds = _dataset(root, "train.json")
    assert len(ds) == 6 and ds.metainfo["num_targets"] == 5 and ds.metainfo["target"] == "random ids"
    for i in range(6):
        item = ds[i]
        frame, view = train[i // 2], i % 2
        assert torch.equal(item["inputs"]["img"], (frame.images[view] * 255).round().to(torch.uint8))
        assert torch.equal(item["data_samples"].target_sem_seg.data, targets[i])
        assert torch.equal(item["data_samples"].gt_sem_seg.data, frame.classes[view])
    gt_targets = _dataset(root, "train_gt_targets.json")
    assert gt_targets.metainfo["num_targets"] == 6
    assert torch.equal(gt_targets[3]["data_samples"].target_sem_seg.data, train[1].classes[1])
    val = _dataset(root, "val.json", test_mode=True)
    assert len(val) == 4 and "target_sem_seg" not in val[0]["data_samples"]
    assert torch.equal(val[3]["data_samples"].gt_sem_seg.data, test[1].classes[1])


def test_dataset_bad_input_names_the_file_and_field(dataset_dir, tmp_path):
    root = dataset_dir[0]
    with pytest.raises(FileNotFoundError, match="make demo-drive-segment"):
        _dataset(tmp_path, "train.json")
    ann = json.loads((root / "train.json").read_text())
    ann["data_list"][1]["target_path"] = "targets/missing.png"
    (tmp_path / "bad.json").write_text(json.dumps(ann))
    with pytest.raises(FileNotFoundError, match=r"data_list\[1\]\.target_path"):
        DATASETS.build(dict(type="ImageSegmentationDataset", data_root=str(root), ann_file=str(tmp_path / "bad.json")))
    ann["metainfo"]["format"] = "something else"
    (tmp_path / "bad.json").write_text(json.dumps(ann))
    with pytest.raises(ValueError, match="format"):
        DATASETS.build(dict(type="ImageSegmentationDataset", data_root=str(root), ann_file=str(tmp_path / "bad.json")))
    # a label image of another size, and an RGB one
    for bad, match in ((np.zeros((5, 7), np.uint8), "is 7 x 5 but its image"),
                       (np.zeros((*HW, 3), np.uint8), "single-channel uint8")):
        ann = json.loads((root / "train.json").read_text())
        Image.fromarray(bad).save(tmp_path / "label.png")
        ann["data_list"][0]["target_path"] = str(tmp_path / "label.png")
        (tmp_path / "bad.json").write_text(json.dumps(ann))
        ds = DATASETS.build(dict(type="ImageSegmentationDataset", data_root=str(root), pipeline=PIPELINE,
                                 ann_file=str(tmp_path / "bad.json")))
        with pytest.raises(ValueError, match=match) as err:
            ds[0]
        assert "label.png" in str(err.value)


def _batch(ds, idx):
    items = [ds[i] for i in idx]
    return dict(inputs=dict(img=[it["inputs"]["img"] for it in items]), data_samples=[it["data_samples"]
                                                                                     for it in items])


def test_preprocessor_normalises_and_flips_image_and_labels_together(dataset_dir):
    ds = _dataset(dataset_dir[0], "train.json")
    init_default_scope("pc_kd")
    pre = MODELS.build(dict(type="ImageSegDataPreprocessor", flip_prob=1.0))
    raw = torch.stack([ds[i]["inputs"]["img"] for i in (0, 1)]).float() / 255
    out = pre(_batch(ds, (0, 1)), training=False)
    assert torch.allclose(out["inputs"]["img"], normalise_images(raw))
    targets = [ds[i]["data_samples"].target_sem_seg.data for i in (0, 1)]
    out = pre(_batch(ds, (0, 1)), training=True)
    assert torch.allclose(out["inputs"]["img"], normalise_images(raw).flip(3))
    for sample, target in zip(out["data_samples"], targets):
        assert torch.equal(sample.target_sem_seg.data, target.flip(1))
    with pytest.raises(ValueError, match="one size"):
        pre(dict(inputs=dict(img=[torch.zeros(3, 4, 5, dtype=torch.uint8), torch.zeros(3, 4, 6, dtype=torch.uint8)]),
                 data_samples=[BaseDataElement(), BaseDataElement()]))


def _segmentor(**kwargs):
    init_default_scope("pc_kd")
    torch.manual_seed(0)
    return MODELS.build(dict(type="ImageSegmentor", net=dict(type="TinySegNet", num_classes=5, feat_channels=8,
                                                               width=8), **kwargs))


def test_segmentor_loss_and_predict_match_plain_computations(dataset_dir):
    ds = _dataset(dataset_dir[0], "train.json")
    model = _segmentor(window=(16, 16), window_stride=(8, 9)).eval()
    data = model.data_preprocessor(_batch(ds, (0, 1, 2)), training=False)
    x, samples = data["inputs"]["img"], data["data_samples"]
    target = torch.stack([s.target_sem_seg.data for s in samples])
    loss = model(data["inputs"], samples, mode="loss")["loss_ce"]
    expected = F.cross_entropy(model.net(x), target, ignore_index=255)
    assert torch.allclose(loss, expected)
    loss.backward()
    assert all(p.grad is not None for p in model.net.parameters() if p.requires_grad)
    pred = model(data["inputs"], samples, mode="predict")
    windowed = sliding_window_logits(model.net, x, (16, 16), (8, 9)).argmax(1)
    assert all(torch.equal(s.pred_sem_seg.data, w) for s, w in zip(pred, windowed))
    whole = _segmentor().eval()  # no window: one pass over the image
    assert torch.allclose(whole(data["inputs"], mode="tensor"), whole.net(x))
    # every pixel unlabelled: a zero loss that still back-propagates; a target id beyond the net's outputs raises
    for s in samples:
        s.target_sem_seg.data = torch.full_like(s.target_sem_seg.data, 255)
    empty = model(data["inputs"], samples, mode="loss")["loss_ce"]
    assert empty.item() == 0 and empty.requires_grad
    samples[0].target_sem_seg.data[0, 0] = 7
    with pytest.raises(ValueError, match="target id 7 but the net has 5 outputs"):
        model(data["inputs"], samples, mode="loss")


def test_segmentor_trunk_comes_from_the_checkpoint_but_the_classifier_does_not(tmp_path):
    torch.manual_seed(1)
    donor = MODELS.build(dict(type="TinySegNet", num_classes=1, feat_channels=8, width=8))
    torch.save({k: v.half() for k, v in donor.state_dict().items()}, tmp_path / "trunk.pth")
    model = _segmentor(init_trunk_from=str(tmp_path / "trunk.pth"))
    own = model.net.state_dict()
    for key, value in donor.state_dict().items():
        if key.startswith("classifier"):
            assert own[key].shape[0] == 5  # a new head of the student's classes
        else:
            assert torch.equal(own[key], value.half().to(own[key].dtype)), key
    wider = MODELS.build(dict(type="TinySegNet", num_classes=1, feat_channels=8, width=12))
    torch.save(wider.state_dict(), tmp_path / "wider.pth")
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        _segmentor(init_trunk_from=str(tmp_path / "wider.pth"))


@pytest.mark.parametrize("unmatched", ["wrong", "ignore"])
def test_hungarian_metric_on_pixels_equals_one_matching_over_all_pixels(unmatched):
    g = torch.Generator().manual_seed(3)
    samples, preds, gts = [], [], []
    for _ in range(4):
        gt = torch.randint(0, 4, (9, 11), generator=g)
        gt[0] = 255
        pred = torch.where(torch.rand(9, 11, generator=g) < 0.7, gt.clamp(max=3) * 2, torch.randint(0, 8, (9, 11),
                                                                                                    generator=g))
        samples.append(dict(pred_sem_seg=dict(data=pred), gt_sem_seg=dict(data=gt)))
        preds.append(pred.flatten())
        gts.append(gt.flatten())
    metric = HungarianSegMetric(unmatched=unmatched)
    metric.dataset_meta = dict(classes=("a", "b", "c", "d"))
    metric.process(None, samples[:2])
    metric.process(None, samples[2:])
    scores = metric.compute_metrics(metric.results)
    expected = hungarian_miou(torch.cat(preds), torch.cat(gts), 4, 255, unmatched)
    assert scores["miou"] == pytest.approx(expected["miou"]) and scores["oacc"] == pytest.approx(expected["oacc"])
    assert expected["unmatched_points"] > 0  # 8 clusters for 4 classes: the convention matters here
    if unmatched == "wrong":
        lenient = hungarian_miou(torch.cat(preds), torch.cat(gts), 4, 255, "ignore")["miou"]
        assert scores["miou_unmatched_ignored"] == pytest.approx(lenient) and lenient > scores["miou"]


def test_shipped_config_trains_validates_and_tests_through_the_tools(dataset_dir, tmp_path):
    root = dataset_dir[0]
    opts = ["train_cfg.max_iters=4", "train_cfg.val_interval=4", "param_scheduler.0.T_max=4",
            "param_scheduler.0.end=4", "train_dataloader.batch_size=2", "default_hooks.logger.interval=1",
            "model.net.feat_channels=8", "model.net.width=8", "model.net.num_classes=5", "model.init_trunk_from=",
            "model.window=[16,16]", "model.window_stride=[8,8]"]
    opts += [f"{loader}.dataset.data_root={root}" for loader in ("train_dataloader", "val_dataloader",
                                                                "test_dataloader")]
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")
    run = subprocess.run([sys.executable, "tools/train.py", str(CONFIG), "--work-dir", str(tmp_path / "work"),
                          "--cfg-options", *opts], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    assert re.search(r"Iter\(val\).*unsup/miou: [0-9.]+.*unsup/miou_unmatched_ignored", log), log[-3000:]
    assert "unmatched clusters count wrong" in log
    pictures = list((tmp_path / "work" / "pictures" / "iter_4").glob("*.png"))
    assert len(pictures) == 2 and (tmp_path / "work" / "iter_4.pth").is_file()
    test = subprocess.run([sys.executable, "tools/test.py", str(CONFIG), str(tmp_path / "work" / "iter_4.pth"),
                           "--out", str(tmp_path / "preds"), "--cfg-options", *opts[6:]], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert test.returncode == 0, (test.stdout + test.stderr)[-3000:]
    metrics = json.loads((tmp_path / "preds" / "metrics.json").read_text())
    pred = np.asarray(Image.open(tmp_path / "preds" / "val_0000_0.png"))
    assert pred.shape == HW and pred.max() < 5 and 0 <= metrics["unsup/miou"] <= 1
