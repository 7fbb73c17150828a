"""ACT and ReCon pretraining by the properties that fail when the method is wrong: the 2D teacher and ACT's frozen
ViT stay bit-identical through a training step while the prompts move; ReCon's image / text losses reach only the
global stream and its reconstruction loss only the local one; a hidden group's own points cannot reach its
prediction; ACT's loss is the hand-computed cosine; the synthetic objects, depth renders and shipped text
embeddings are what their docstrings say."""
import json

import numpy as np
import pytest
import torch

from pc_kd.datasets.synthetic.objects import (OBJECT_CLASSES, POOL_CLASSES, PROBE_CLASSES, VARIANTS, make_object,
                                              make_object_set, render_depth)
from pc_kd.experiments import masked_pretraining as mp
from pc_kd.models.backbones.depth_vit import DepthMAEDecoder, DepthViT, mae_loss, patchify, random_mask
from pc_kd.models.pretrainers import ACTAutoencoder, ACTDistiller, ReConPretrainer, act_cosine_loss
from pc_kd.ops import group_neighbourhoods

ARCH = dict(dim=16, depth=2, num_heads=2, decoder_depth=1, tokenizer_hidden=(8, 8, 16))


def _groups(b=3, seed=0, groups=8, k=6):
    g = torch.Generator().manual_seed(seed)
    neigh, centres, _ = group_neighbourhoods(torch.rand(b, 64, 3, generator=g) * 2 - 1, groups, k)
    return neigh, centres


def _recon(**kw):
    torch.manual_seed(0)
    return ReConPretrainer(group_size=6, image_dim=8, text_dim=4, **ARCH, **kw)


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}


def _is_global(name: str) -> bool:
    return (name.startswith(("global_", "image_proj", "text_proj")) or "_global." in name)


def test_recon_teacher_losses_reach_only_the_global_stream_and_reconstruction_only_the_local_one():
    model = _recon()
    neigh, centres = _groups()
    g = torch.Generator().manual_seed(1)
    image, text = torch.randn(3, 8, generator=g), torch.randn(3, 4, generator=g)
    losses = model.loss(neigh, centres, image, text, torch.Generator().manual_seed(2))
    from_teachers = _grads(model, losses["loss_image"] + losses["loss_text"])
    losses = model.loss(neigh, centres, image, text, torch.Generator().manual_seed(2))
    from_mdm = _grads(model, losses["loss_mdm"])
    shared = {"encoder.norm.weight", "encoder.norm.bias"}
    global_names = [n for n in from_mdm if _is_global(n)]
    local_names = [n for n in from_mdm if not _is_global(n) and n not in shared]
    assert any(n.startswith("stem.") for n in local_names) and any(n.startswith("decoder.") for n in local_names)
    assert "global_queries" in global_names and "image_proj.weight" in global_names
    for name in local_names:
        assert from_teachers[name].abs().max() == 0, name
    for name in global_names:
        assert from_mdm[name].abs().max() == 0, name
    assert all(from_teachers[n].abs().max() > 0 for n in shared) and all(from_mdm[n].abs().max() > 0 for n in shared)
    assert sum(from_mdm[n].abs().sum() for n in local_names) > 0
    assert sum(from_teachers[n].abs().sum() for n in global_names) > 0


def test_point_mae_weights_drop_the_teacher_losses_and_a_wrong_feature_shape_is_named():
    neigh, centres = _groups()
    assert set(_recon(image_weight=0.0, text_weight=0.0).loss(neigh, centres)) == {"loss_mdm"}
    with pytest.raises(ValueError, match=r"image_feats must be \[3, 8\]"):
        _recon().loss(neigh, centres, torch.zeros(3, 7), torch.zeros(3, 4))


@pytest.mark.parametrize("kind", ["recon", "act"])
def test_a_hidden_groups_points_cannot_reach_its_prediction(kind):
    """Moving the points of the hidden groups (not their centres) leaves every prediction unchanged; moving a
    visible group's points changes them."""
    torch.manual_seed(0)
    neigh, centres = _groups()
    if kind == "recon":
        model = _recon().eval()
        predict = lambda n, m: model.decoder(model.encode(n, centres, m)[1], centres, m)  # noqa: E731
    else:
        model = ACTDistiller(None, **ARCH).eval()
        predict = lambda n, m: model.decoder(model.encode(n, centres, m)[:, 1:], centres, m)  # noqa: E731
    mask = random_mask(3, 8, 0.6, torch.Generator().manual_seed(0))
    moved = neigh.clone()
    moved[mask] += torch.randn_like(moved[mask])
    assert torch.equal(predict(neigh, mask), predict(moved, mask))
    moved = neigh.clone()
    moved[~mask] += 0.5
    assert not torch.allclose(predict(neigh, mask), predict(moved, mask))


def _act_stage1():
    torch.manual_seed(0)
    vit = DepthViT(image_size=8, patch=4, dim=8, depth=2, num_heads=2)
    return ACTAutoencoder(vit, dim=16, num_codes=32, num_prompts=3, tokenizer_hidden=(8, 8, 16), decoder_hidden=16)


def _step(model, loss):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    opt.zero_grad()
    loss.backward()
    opt.step()


def test_act_stage1_keeps_the_vit_frozen_and_moves_the_prompts():
    model = _act_stage1().train()
    neigh, centres = _groups()
    vit_before = {k: v.clone() for k, v in model.vit.vit.state_dict().items()}
    prompts_before = model.vit.prompts.detach().clone()
    assert not model.vit.vit.training  # the frozen ViT's dropout / norms stay in eval mode
    losses = model.loss(neigh, centres, tau=1.0, kl_weight=0.1)
    assert set(losses) == {"loss_coarse", "loss_fine", "loss_kl"} and losses["loss_kl"] >= 0
    _step(model, sum(losses.values()))
    for k, v in model.vit.vit.state_dict().items():
        assert torch.equal(v, vit_before[k]), k
    assert not torch.equal(model.vit.prompts, prompts_before)
    assert all(p.grad is None for p in model.vit.vit.parameters())


def test_act_stage2_keeps_the_teacher_bit_identical_and_its_loss_is_the_hand_cosine():
    teacher = _act_stage1()
    student = ACTDistiller(teacher, **ARCH).train()
    assert not teacher.training
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    neigh, centres = _groups()
    _step(student, student.loss(neigh, centres, torch.Generator().manual_seed(0))["loss_cos"])
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, before[k]), k  # parameters and BatchNorm statistics alike
    assert not any(p.requires_grad for p in teacher.parameters())

    g = torch.Generator().manual_seed(3)
    pred, target = torch.randn(2, 5, 7, generator=g), torch.randn(2, 5, 7, generator=g)
    hand = 0.0
    for b in range(2):
        cos = [float(pred[b, j] @ target[b, j] / (pred[b, j].norm() * target[b, j].norm())) for j in range(5)]
        hand += (1 - sum(cos) / 5) / 2
    assert act_cosine_loss(pred, target).item() == pytest.approx(hand, abs=1e-6)
    assert act_cosine_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)


def test_random_mask_hides_exactly_the_ratio_and_patchify_follows_the_patch_embedding():
    mask = random_mask(5, 64, 0.8, torch.Generator().manual_seed(0))
    assert mask.sum(1).tolist() == [51] * 5 and len({tuple(r.tolist()) for r in mask}) == 5
    with pytest.raises(ValueError, match="ratio"):
        random_mask(1, 4, 1.0)
    vit = DepthViT(image_size=8, patch=4, dim=16, depth=1, num_heads=2)
    with torch.no_grad():  # a patch embedding that copies its 16 pixels: its tokens must be patchify's rows
        vit.patch_embed.weight.copy_(torch.eye(16).reshape(16, 1, 4, 4))
        vit.patch_embed.bias.zero_()
    images = torch.rand(2, 1, 8, 8)
    assert torch.equal(vit.patch_embed(images).flatten(2).transpose(1, 2), patchify(images, 4))
    loss = mae_loss(vit, DepthMAEDecoder(vit, num_heads=2), images, 0.75, torch.Generator().manual_seed(0))
    assert loss.item() > 0 and loss.requires_grad
    with pytest.raises(ValueError, match=r"images must be \[B, 1, 8, 8\]"):
        vit(torch.rand(2, 1, 9, 9))


def test_render_depth_puts_the_nearest_point_at_its_pixel():
    # seen from azimuth 0, elevation 0 the camera sits on +x looking at -x: right is +y, up is +z
    points = torch.tensor([[[0.0, 0.5, 0.5], [-0.5, 0.5, 0.5], [0.0, -0.75, -0.75]]])
    image = render_depth(points, torch.zeros(1), torch.zeros(1), size=8)
    assert image.shape == (1, 1, 8, 8)
    assert image[0, 0, 2, 6].item() == pytest.approx(0.5)  # the nearer of the two points on one pixel: depth 0
    assert image[0, 0, 7, 1].item() == pytest.approx(0.5)  # u = -0.75 -> column 1, v = -0.75 -> row 7
    assert (image > 0).sum() == 2


def test_objects_are_seeded_in_the_unit_sphere_and_pool_and_probe_classes_are_disjoint():
    assert not set(POOL_CLASSES) & set(PROBE_CLASSES) and set(POOL_CLASSES) | set(PROBE_CLASSES) == set(OBJECT_CLASSES)
    for name in OBJECT_CLASSES:
        for variant in VARIANTS:
            a = make_object(name, 7, 256, variant)
            assert a.shape == (256, 3) and a.dtype == np.float32 and np.linalg.norm(a, axis=1).max() < 1.02
            assert np.array_equal(a, make_object(name, 7, 256, variant))
            assert not np.array_equal(a, make_object(name, 8, 256, variant))
        assert not np.array_equal(make_object(name, 7, 256, "scanned"), make_object(name, 7, 256, "perturbed"))
    points, labels = make_object_set(PROBE_CLASSES, 2, seed=1, num_points=32)
    assert points.shape == (12, 32, 3) and labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    with pytest.raises(ValueError, match="unknown category 'desk'"):
        make_object("desk", 0)
    with pytest.raises(ValueError, match="unknown variant 'noisy'"):
        make_object("chair", 0, variant="noisy")


def test_shipped_text_embeddings_are_the_functions_output():
    data = json.loads(mp.TEXT_EMBEDDINGS.read_text())
    assert data["template"] == mp.TEXT_TEMPLATE and set(data["embeddings"]) == set(OBJECT_CLASSES)
    for name, vec in data["embeddings"].items():
        np.testing.assert_allclose(vec, mp.category_text_embedding(name, data["dim"]), atol=1e-6)
    a, b = mp.category_text_embedding("table"), mp.category_text_embedding("tables")
    assert a @ b > mp.category_text_embedding("torus") @ a  # shared trigrams point the same way


def test_shipped_depth_teacher_loads_and_every_method_pretrains_and_probes_on_a_tiny_set():
    s = mp.Settings(num_points=128, num_groups=16, group_size=8, pool_per_class=6, probe_train_per_class=4,
                    probe_test_per_class=2, dim=16, depth=1, num_heads=2, decoder_depth=1, tokenizer_hidden=(8, 8, 16),
                    epochs=1, act_stage1_epochs=1, batch_size=8, act_codes=16, act_prompts=2)
    vit = mp.load_depth_teacher()
    assert sum(p.numel() for p in vit.parameters()) * 4 < 1 << 20  # shipped under 1 MB
    before = [p.detach().clone() for p in vit.parameters()]
    sets = mp.make_sets(s)
    assert sets["pool"].neighbourhoods.shape == (36, 16, 8, 3) and sets["clean_test"].labels.shape == (12,)
    for method in mp.METHODS:
        model, record = mp.pretrain(method, sets, vit, s, seed=0, log=lambda *a: None)
        result = mp.probe(lambda d: mp.encoder_features(model, d), sets)
        assert set(result) == set(VARIANTS) and all(0 <= v <= 1 for v in result.values())
        assert (method == "random-init") == ("loss" not in record)
    assert all(torch.equal(a, b) for a, b in zip(before, vit.parameters()))
    with pytest.raises(ValueError, match="unknown method"):
        mp.pretrain("point-bert", sets, vit, s, 0)


def test_act_takes_any_vit_with_blocks_and_norm_and_names_what_is_not_one():
    with pytest.raises(TypeError, match="Linear is not a ViT with .blocks, .norm"):
        ACTAutoencoder(torch.nn.Linear(2, 2), dim=16, num_codes=8)


def test_demo_writes_the_table_and_a_rerun_skips_what_is_finished(tmp_path, monkeypatch):
    s = mp.Settings(methods=("random-init", "recon"), num_points=128, num_groups=16, group_size=8, pool_per_class=6,
                    probe_train_per_class=4, probe_test_per_class=2, dim=16, depth=1, num_heads=2, decoder_depth=1,
                    tokenizer_hidden=(8, 8, 16), epochs=1, batch_size=8)
    result = mp.demo(tmp_path, s, seeds=(0,), log=lambda *a: None)
    assert "| ReCon | 1 |" in result["table"] and "| D2 histogram | 1 |" in result["table"]
    assert (tmp_path / "pictures" / "recon_masked_groups.png").stat().st_size > 0
    assert (tmp_path / "recon_seed0.pth").is_file() and (tmp_path / "table.md").read_text() == result["table"]

    def no_training(*args, **kwargs):
        raise AssertionError("a finished method was pretrained again")

    monkeypatch.setattr(mp, "pretrain", no_training)
    again = mp.demo(tmp_path, s, seeds=(0,), log=lambda *a: None)
    assert again["table"] == result["table"]
    with pytest.raises(AssertionError, match="pretrained again"):  # other settings are not reused
        mp.demo(tmp_path, mp.Settings(**{**s.__dict__, "epochs": 2}), seeds=(0,), log=lambda *a: None)
