"""PartDistill's student inside the Runner: the shape-set dataset and its bad input, the packed units and the model's
loss against the demo loop's computation, the metric against part_miou, and tools/train.py + tools/test.py on the
shipped config: backward distillation re-scores the units from the student's snapshot (checked against
rescore_units on the checkpoint of the trigger epoch), stores them in the checkpoints and resumes with them."""
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from pc_kd.datasets import PartUnitsDataset, ShapeSet, load_shape_set, save_shape_set
from pc_kd.models.losses.part_distill import part_class_weights, part_distill_loss, rescore_units
from pc_kd.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
CONFIG = (ROOT / "configs" / "partdistill" /
          "partdistill-backward_spconv-unet_synthetic-box-predictor_synthetic-chairs.py")
CHANNELS = "[8,16,16,32]"


@pytest.fixture(scope="module")
def shape_sets(tmp_path_factory):
    """Two small chair sets (6 training, 3 test shapes of 256 points, 4 views) under the config's file names."""
    from pc_kd.experiments import partdistill as pd

    root = tmp_path_factory.mktemp("shapes")
    s = pd.Settings(num_points=256, num_views=4)
    cfg = Config.fromfile(CONFIG)
    for name, seed, count in ((cfg.train_dataloader.dataset.ann_file, 0, 6),
                              (cfg.val_dataloader.dataset.ann_file, 1, 3)):
        save_shape_set(pd.make_shape_set("chair", seed, count, s, log=lambda *_: None), root / name)
    return root


def _dataset(root, name, train=False):
    pipeline = ([dict(type="PartShapeAugment")] if train else []) + [dict(type="PackPartUnitsInputs")]
    return PartUnitsDataset(ann_file=str(Path(root) / name), pipeline=pipeline)


def test_shape_set_dataset_reads_units_and_names_bad_files(shape_sets, tmp_path):
    cfg = Config.fromfile(CONFIG)
    data = load_shape_set(shape_sets / cfg.train_dataloader.dataset.ann_file)
    ds = _dataset(shape_sets, cfg.train_dataloader.dataset.ann_file)
    assert len(ds) == 6 and ds.metainfo["num_parts"] == 4 and ds.metainfo["classes"][0] == "seat"
    sample = ds[2]
    units = sample["data_samples"].part_units
    assert sample["inputs"]["points"].shape == (256, 6)
    assert torch.equal(sample["inputs"]["points"][:, :3], sample["inputs"]["points"][:, 3:])  # xyz as features
    for k, idx in enumerate(data.unit_points[2]):  # scores [N, K]: unit k's confidence on its points, 0 elsewhere
        column = np.zeros(256, np.float32)
        column[idx] = data.unit_scores[2][k]
        assert np.array_equal(units.scores[:, k].numpy(), column)
    assert torch.equal(units.labels, torch.from_numpy(data.unit_labels[2]))
    new = [np.full(len(u), 0.5, np.float32) for u in data.unit_labels]
    ds.set_unit_scores(new)
    assert set(ds[2]["data_samples"].part_units.scores.unique().tolist()) <= {0.0, 0.5}
    with pytest.raises(ValueError, match="shape 0 has"):
        ds.set_unit_scores([np.zeros(99)] * 6)

    with pytest.raises(FileNotFoundError, match="demo-partdistill --shapes-only"):
        PartUnitsDataset(ann_file=str(tmp_path / "none.npz"))
    np.savez(tmp_path / "partial.npz", points=data.points)
    with pytest.raises(KeyError, match=r"partial\.npz: missing fields \['category'"):
        load_shape_set(tmp_path / "partial.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(ValueError, match=r"text\.npz: not a readable \.npz"):
        load_shape_set(tmp_path / "text.npz")
    save_shape_set(ShapeSet("sofa", data.points, data.part, data.unit_points, data.unit_labels, data.unit_scores,
                            data.unit_correct), tmp_path / "sofa.npz")
    with pytest.raises(ValueError, match="category 'sofa'"):
        load_shape_set(tmp_path / "sofa.npz")


def _model(seed=0):
    init_default_scope("pc_kd")
    cfg = Config.fromfile(CONFIG)
    cfg.model.backbone.channels = (8, 16, 16, 32)
    cfg.model.decode_head.in_channels = 8
    torch.manual_seed(seed)
    return MODELS.build(cfg.model)


def test_model_loss_is_the_demo_loops_distillation_loss(shape_sets):
    """Same batch, same weights: the Runner model's loss equals part_distill_loss over the demo loop's padded score
    matrices; with shapes of different sizes it is the mean over the real points."""
    from pc_kd.experiments import partdistill as pd
    from pc_kd.structures.part_units import unit_score_matrix

    cfg = Config.fromfile(CONFIG)
    data = load_shape_set(shape_sets / cfg.train_dataloader.dataset.ann_file)
    ds = _dataset(shape_sets, cfg.train_dataloader.dataset.ann_file)
    model = _model().train()
    idx = [0, 3, 4]
    batch = pseudo_collate([ds[i] for i in idx])
    torch.manual_seed(1)
    ours = model(**model.data_preprocessor(batch, True), mode="loss")["loss_part_distill"]
    torch.manual_seed(1)
    logits = pd._logits(model, torch.from_numpy(data.points[idx]))
    scores = [unit_score_matrix(256, data.unit_points[i], data.unit_scores[i]) for i in idx]
    k = max(s.shape[1] for s in scores)
    scores = torch.stack([torch.nn.functional.pad(s, (0, k - s.shape[1])) for s in scores])
    labels = torch.stack([torch.nn.functional.pad(torch.from_numpy(data.unit_labels[i]),
                                                  (0, k - len(data.unit_labels[i]))) for i in idx])
    ref = part_distill_loss(logits, scores, labels, part_class_weights(scores, labels, 4))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)

    half = ds[1]  # a shape cut to its first 100 points (and the units' points among them)
    half["inputs"]["points"] = half["inputs"]["points"][:100]
    half["data_samples"].part_units.scores = half["data_samples"].part_units.scores[:100]
    batch = pseudo_collate([ds[0], half])
    model.eval()  # no dropout / batch statistics differences between the two calls
    ragged = model(**model.data_preprocessor(batch, False), mode="loss")["loss_part_distill"]
    per_point, all_scores, all_labels = [], [], []
    for sample in (ds[0], half):
        inputs = model.data_preprocessor(pseudo_collate([sample]), False)["inputs"]
        per_point.append(model.point_logits(inputs))
        all_scores.append(sample["data_samples"].part_units.scores)
        all_labels.append(sample["data_samples"].part_units.labels)
    k = max(s.shape[1] for s in all_scores)
    padded = [torch.nn.functional.pad(s, (0, k - s.shape[1])) for s in all_scores]
    lab = torch.stack([torch.nn.functional.pad(lb, (0, k - len(lb))) for lb in all_labels])
    # the reference: every real point's term, averaged over the 356 real points, class weights of the batch
    stacked = torch.zeros(2, 256, k)
    stacked[0], stacked[1, :100] = padded[0], padded[1]
    weights = part_class_weights(stacked, lab, 4)
    terms = []
    for logit, sc, lb in zip(per_point, padded, lab):
        terms.append(part_distill_loss(logit[None], sc[None], lb[None], weights) * len(logit))
    torch.testing.assert_close(ragged, sum(terms) / 356, rtol=1e-5, atol=1e-6)


def test_part_miou_metric_is_the_mean_of_part_miou():
    from pc_kd.evaluation import PartMIoUMetric, category_miou

    g = np.random.default_rng(0)
    preds = [g.integers(0, 3, 50) for _ in range(4)]
    gts = [g.integers(0, 3, 50) for _ in range(4)]
    gts[1][:] = 0  # parts 1 and 2 absent from the truth (and from a prediction below): IoU 1 for those
    preds[1][:] = 0
    metric = PartMIoUMetric()
    metric.dataset_meta = dict(num_parts=4)
    metric.process({}, [dict(pred_pts_seg=dict(pts_semantic_mask=torch.from_numpy(p)),
                             gt_pts_seg=dict(pts_semantic_mask=torch.from_numpy(t))) for p, t in zip(preds, gts)])
    out = metric.compute_metrics(metric.results)
    assert out["part_miou"] == pytest.approx(100 * category_miou(preds, gts, range(4)))
    assert out["shapes"] == 4


def _train(shape_sets, work, *flags, options=(), epochs=3):
    env = dict(os.environ, OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "tools/train.py", str(CONFIG), "--work-dir", str(work), *flags, "--cfg-options",
           f"data_root={shape_sets}", f"train_dataloader.dataset.data_root={shape_sets}",
           f"val_dataloader.dataset.data_root={shape_sets}", f"test_dataloader.dataset.data_root={shape_sets}",
           f"train_cfg.max_epochs={epochs}", f"train_cfg.val_interval={epochs}", "train_dataloader.batch_size=2",
           f"model.backbone.channels={CHANNELS}", "model.decode_head.in_channels=8",
           "default_hooks.checkpoint.interval=1", "default_hooks.checkpoint.max_keep_ckpts=-1",
           "default_hooks.logger.interval=1",
           "custom_hooks.0.plateau_window=1", "custom_hooks.0.plateau_tol=1e9", "custom_hooks.0.batch_size=4",
           *options]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    return out.returncode, out.stdout + out.stderr


def test_train_rescores_units_from_the_snapshot_resumes_with_them_and_tests(shape_sets, tmp_path):
    work = tmp_path / "work"
    code, log = _train(shape_sets, work)
    assert code == 0, log[-4000:]
    # tolerance 1e9: the plateau holds after the first epoch; backward distillation runs from epoch 2
    assert "backward distillation from epoch 2" in log, log[-3000:]
    assert re.search(r"Epoch\(val\).*part/part_miou: [0-9.]+", log), log[-2000:]
    state = torch.load(work / "epoch_1.pth", map_location="cpu", weights_only=False)
    stored = state["meta"]["backward_distillation"]
    assert stored["trigger_epoch"] == 1 and len(stored["epoch_losses"]) == 1

    cfg = Config.fromfile(CONFIG)
    data = load_shape_set(shape_sets / cfg.train_dataloader.dataset.ann_file)
    model = _model()
    model.load_state_dict(state["state_dict"])
    model.eval()
    ds = _dataset(shape_sets, cfg.train_dataloader.dataset.ann_file)
    batch = pseudo_collate([ds[i] for i in range(len(ds))])
    with torch.no_grad():
        labels = [s.pred_pts_seg.pts_semantic_mask for s in model(**model.data_preprocessor(batch, False),
                                                                   mode="predict")]
    for i, y in enumerate(labels):
        expected = rescore_units(y, [torch.from_numpy(p) for p in data.unit_points[i]],
                                 torch.from_numpy(data.unit_labels[i]))
        np.testing.assert_allclose(stored["rescores"][i], expected.numpy(), rtol=0, atol=1e-6)
    final = torch.load(work / "epoch_3.pth", map_location="cpu", weights_only=False)
    assert final["meta"]["backward_distillation"]["rescores"] == stored["rescores"]  # one snapshot, kept

    code, log = _train(shape_sets, work, "--resume", epochs=4)
    assert code == 0, log[-4000:]
    assert "resumed with the units re-scored after epoch 1" in log, log[-3000:]
    assert torch.load(work / "epoch_4.pth", map_location="cpu",
                      weights_only=False)["meta"]["backward_distillation"]["rescores"] == stored["rescores"]

    env = dict(os.environ, OMP_NUM_THREADS="2")
    tested = subprocess.run([sys.executable, "tools/test.py", str(CONFIG), str(work / "epoch_4.pth"), "--work-dir",
                             str(work), "--cfg-options", f"test_dataloader.dataset.data_root={shape_sets}",
                             f"model.backbone.channels={CHANNELS}", "model.decode_head.in_channels=8"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = tested.stdout + tested.stderr
    assert tested.returncode == 0, out[-4000:]
    assert re.search(r"part/part_miou: [0-9.]+\s+part/shapes: 3", out), out[-2000:]


def test_persistent_workers_are_refused(shape_sets, tmp_path):
    code, log = _train(shape_sets, tmp_path / "w", epochs=1,
                       options=("train_dataloader.num_workers=1", "train_dataloader.persistent_workers=True"))
    assert code != 0 and "persistent_workers=False" in log, log[-2000:]
