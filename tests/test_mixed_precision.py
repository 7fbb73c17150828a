"""Mixed precision on the CPU: spconv's convolutions run in float32 under CPU autocast; the losses compute in float32
whatever precision their inputs come in (checked against float64 where float16 arithmetic overflows or rounds);
fused targets stay float16 from the file to the batch; the demo's student (and the BEV detectors) train a step
under bfloat16 and float16 autocast with finite losses and gradients close to float32. The CUDA side (mmengine's
AmpOptimWrapper) is exercised by benchmarks/gpu_checks.sh."""
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

from pc_kd.models.losses.bev_distill import dense_feature_loss, response_loss
from pc_kd.models.losses.feature_losses import CMDLoss, CosineLoss, SegmentInfoNCELoss
from pc_kd.ops.bev_pool import BEVGrid
from pc_kd.registry import DATASETS, MODELS
from pc_kd.utils.precision import float32_loss, to_float32

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "pointdc" / "pointdc_spconv-unet_tinysegnet_synthetic-indoor.py"
DRIVING = ROOT / "configs" / "supervised"
HALF = [torch.bfloat16, torch.float16]


def test_sparse_convolutions_run_in_float32_under_cpu_autocast():
    from pc_kd.ops import sparse as sp

    g = torch.Generator().manual_seed(0)
    coords = torch.unique(torch.randint(0, 9, (300, 3), generator=g), dim=0)
    indices = torch.cat([torch.zeros(len(coords), 1, dtype=torch.long), coords], 1)
    feats = torch.randn(len(coords), 5, generator=g)
    net = sp.SparseSequential(sp.SubMConv3d(5, 7, 3, indice_key="a"), sp.SparseConv3d(7, 4, 3, stride=2))

    def run(x):
        out = net(sp.SparseConvTensor(x, indices, [9, 9, 9], 1))
        return out.features

    ref = run(feats)
    for dtype in HALF:
        with torch.autocast("cpu", dtype=dtype):
            out = run(feats)
            from_half = run(feats.to(dtype))  # e.g. the output of a Linear layer under autocast
        assert out.dtype == torch.float32
        torch.testing.assert_close(out, ref, rtol=0, atol=0)
        torch.testing.assert_close(from_half, run(feats.to(dtype).float()), rtol=0, atol=0)
    x = feats.to(torch.bfloat16).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = run(x)
    out.sum().backward()  # outside autocast, as torch recommends and mmengine's AmpOptimWrapper does
    assert x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad.float()).all()


def test_float32_loss_casts_half_tensors_nested_and_switches_autocast_off():
    seen = {}

    @float32_loss
    def probe(a, parts, *, scale):
        seen.update(a=a.dtype, part=parts[0]["x"].dtype, idx=parts[1].dtype, scale=scale,
                    mm=(a[:, :2] @ a[:, :2].T).dtype)
        return a.sum()

    a = torch.ones(3, 4, dtype=torch.float16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        probe(a, [dict(x=torch.ones(2, dtype=torch.bfloat16)), torch.arange(3)], scale=2).backward()
    assert seen == dict(a=torch.float32, part=torch.float32, idx=torch.int64, scale=2, mm=torch.float32)
    assert a.grad.dtype == torch.float16 and a.grad.eq(1).all()
    assert to_float32(torch.ones(2, dtype=torch.float64)).dtype == torch.float64


def test_feature_losses_are_right_where_float16_arithmetic_overflows():
    """Unnormalised student features of size ~5000 over 256 channels have a norm past float16's 65504: a float16
    normalisation returns zeros (x / inf) and the loss comes out wrong. The losses give float64's value."""
    g = torch.Generator().manual_seed(1)
    target = torch.randn(64, 256, generator=g).double()
    pred = 5000 * (target + 0.3 * torch.randn(64, 256, generator=g).double())
    mask = torch.rand(64, generator=g) > 0.3
    naive = F.mse_loss(F.normalize(pred.half()[mask], dim=1), F.normalize(target.half()[mask], dim=1),
                       reduction="none").sum(1).mean()
    reference = CMDLoss()(pred, target, mask)
    assert abs(float(naive) - float(reference)) > 0.1  # the trap is real
    for loss in (CMDLoss(), CosineLoss()):
        ref = loss(pred, target, mask)
        half = loss(pred.half().requires_grad_(), target.half(), mask)
        assert half.dtype == torch.float32
        torch.testing.assert_close(half.double(), ref, rtol=2e-3, atol=2e-3)
    seg = torch.randint(0, 12, (64,), generator=g)
    nce = SegmentInfoNCELoss()
    torch.testing.assert_close(nce(pred.half(), target.half(), seg, mask).double(), nce(pred, target, seg, mask),
                               rtol=5e-3, atol=5e-3)


def test_bev_distillation_losses_are_right_with_float16_maps():
    grid = BEVGrid((-8.0, 8.0), (-8.0, 8.0), (-5.0, 3.0), (0.5, 0.5))
    boxes = [torch.tensor([[1.0, 2.0, 0.0, 4.0, 2.0, 1.5, 0.3], [-4.0, -3.0, 0.0, 2.0, 2.0, 1.5, 1.0]]),
             torch.tensor([[3.0, -5.0, 0.0, 4.5, 2.0, 1.5, -0.7]])]
    g = torch.Generator().manual_seed(2)
    student = torch.randn(2, 16, 32, 32, generator=g, dtype=torch.float64) * 300  # squares past 65504
    teacher = torch.randn(2, 16, 32, 32, generator=g, dtype=torch.float64) * 300
    ref = dense_feature_loss(student, teacher, boxes, grid)
    assert not torch.isfinite(((student.half() - teacher.half()) ** 2).mean(1)).all()  # the trap is real
    torch.testing.assert_close(dense_feature_loss(student.half(), teacher.half(), boxes, grid).double(), ref,
                               rtol=2e-3, atol=0)
    heads = [dict(heatmap=torch.randn(2, 2, 32, 32, generator=g, dtype=torch.float64) * 12,
                  reg=torch.randn(2, 2, 32, 32, generator=g, dtype=torch.float64)) for _ in range(2)]
    ref = response_loss(heads[0:1], heads[1:2], boxes, grid)
    with torch.autocast("cpu", dtype=torch.float16):
        half = response_loss(to_half(heads[0:1]), to_half(heads[1:2]), boxes, grid)
    for key in ("cls", "reg"):
        torch.testing.assert_close(half[key].double(), ref[key], rtol=2e-3, atol=1e-4)


def to_half(x):
    return [{k: v.half() for k, v in d.items()} for d in x]


def test_lss_depth_loss_computes_in_float32_under_autocast():
    cfg = Config.fromfile(DRIVING / "supervised_lss-camera_none_synthetic-driving.py")
    init_default_scope("pc_kd")
    lss = MODELS.build(cfg.model).camera_encoder.view_transform
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(1, 2, lss.num_bins, 4, 6, generator=g) * 8
    depth = logits.softmax(2)
    depth_maps = torch.rand(1, 2, 4 * lss.stride, 6 * lss.stride, generator=g) * 60
    ref = lss.depth_loss(depth.double(), depth_maps)
    with torch.autocast("cpu", dtype=torch.float16):
        half = lss.depth_loss(depth.half(), depth_maps)
    outside = lss.depth_loss(depth.half(), depth_maps)  # float16 probabilities without autocast
    for value in (half, outside):
        assert value.dtype == torch.float32
        torch.testing.assert_close(value.double(), ref, rtol=2e-3, atol=0)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The README demo's model (pointdc config) and a batch of 2 small rooms with targets fused by the shipped
    2D teacher (float16 files, as tools/fuse_features.py writes them) and super-points."""
    from pc_kd.projection.fusion import fuse_dataset
    from pc_kd.voxel import write_superpoints

    init_default_scope("pc_kd")
    root = tmp_path_factory.mktemp("amp_demo")
    cfg = Config.fromfile(DEMO)
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.update(data_root=str(root / "rooms"), num_scenes=2, num_views=2, num_points=6000)
    dataset = DATASETS.build(dict(ds_cfg, pipeline=[]))
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    teacher = MODELS.build(dict(cfg.fusion.teacher, pretrained=str(ROOT / cfg.fusion.teacher.pretrained)))
    fuse_dataset(teacher, infos, root / "fused", device="cpu", border=2, depth_tol=0.1)
    write_superpoints([(Path(i["lidar_path"]).stem, i["lidar_path"], i["num_pts_feats"]) for i in infos],
                      root / "superpoints")
    for step in ds_cfg.pipeline:
        if "feature_dir" in step:
            step["feature_dir"] = str(root / "fused")
        if "superpoint_dir" in step:
            step["superpoint_dir"] = str(root / "superpoints")
    samples = DATASETS.build(ds_cfg)
    np.random.seed(0)  # the rooms' augmentation: the same batch in every run
    return dict(cfg=cfg, batch=pseudo_collate([samples[0], samples[1]]))


def test_fused_targets_stay_float16_from_the_file_to_the_batch(demo):
    samples = demo["batch"]["data_samples"]
    feats = [s.teacher_feats.feats for s in samples]
    assert all(f.dtype == torch.float16 for f in feats)
    model = MODELS.build(demo["cfg"].model)
    data = model.data_preprocessor(copy.deepcopy(demo["batch"]), True)
    target, mask = model._targets(data["inputs"], data["data_samples"])
    assert target.dtype == torch.float32 and mask.any()
    torch.testing.assert_close(target, torch.cat(feats).float(), rtol=0, atol=0)


def _loss_and_grads(model, batch, dtype):
    torch.manual_seed(0)  # the same augmentation for every precision
    model.zero_grad()
    with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
        data = model.data_preprocessor(copy.deepcopy(batch), True)
        losses = model(**data, mode="loss")
    total = sum(v for k, v in losses.items() if k.startswith("loss"))
    total.backward()
    grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    return float(total), grads


# Lowest cosine between a step's gradients under CPU autocast and in float32. bfloat16 keeps 8 mantissa bits: the
# camera detector's image features differ from float32's by 2 % and its gradients' cosine is 0.954 to 0.962 over 8
# augmentations of the test's batch (LiDAR detector 0.979 to 0.987; float16: >= 0.994 for both).
MIN_GRAD_COSINE = {torch.bfloat16: 0.93, torch.float16: 0.98}


def _check_precisions(model, batch, rtol):
    model.train()
    loss32, grads32 = _loss_and_grads(model, batch, None)
    for dtype in HALF:
        loss, grads = _loss_and_grads(model, batch, dtype)
        assert np.isfinite(loss) and torch.isfinite(grads).all(), dtype
        assert abs(loss - loss32) <= rtol * abs(loss32), (dtype, loss, loss32)
        cosine = F.cosine_similarity(grads, grads32, dim=0)
        assert cosine > MIN_GRAD_COSINE[dtype], (dtype, float(cosine))


def test_demo_student_trains_a_step_under_bf16_and_fp16_autocast(demo):
    torch.manual_seed(0)
    model = MODELS.build(demo["cfg"].model)
    dense = []
    model.connectors["proj"].register_forward_hook(lambda m, i, o: dense.append(o.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(**model.data_preprocessor(copy.deepcopy(demo["batch"]), True), mode="loss")
    assert dense == [torch.bfloat16]  # the dense layers really ran in low precision
    _check_precisions(model, demo["batch"], rtol=0.02)


@pytest.mark.parametrize("config", ["supervised_centerpoint-pillar_none_synthetic-driving.py",
                                    "supervised_lss-camera_none_synthetic-driving.py"])
def test_bev_detectors_train_a_step_under_bf16_and_fp16_autocast(config, tmp_path):
    init_default_scope("pc_kd")
    cfg = Config.fromfile(DRIVING / config)
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.update(data_root=str(tmp_path), num_samples=2, image_hw=(48, 96), num_objects=12)
    dataset = DATASETS.build(ds_cfg)
    np.random.seed(0)  # BEVAugment draws its generator's seed from numpy: the same batch in every run
    batch = pseudo_collate([dataset[0], dataset[1]])
    torch.manual_seed(0)
    _check_precisions(MODELS.build(cfg.model), batch, rtol=0.02)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="mmengine's AmpOptimWrapper needs a CUDA GPU")
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_amp_optim_wrapper_trains_the_demo_student_on_cuda(demo, dtype):
    from mmengine.optim import AmpOptimWrapper

    torch.manual_seed(0)
    model = MODELS.build(demo["cfg"].model).cuda().train()
    wrapper = AmpOptimWrapper(optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3), dtype=dtype)
    before = [p.detach().clone() for p in model.parameters()]
    for _ in range(3):
        with wrapper.optim_context(model):
            data = model.data_preprocessor(copy.deepcopy(demo["batch"]), True)
            losses = model(**data, mode="loss")
        total = sum(v for k, v in losses.items() if k.startswith("loss"))
        assert torch.isfinite(total) and total.dtype == torch.float32
        wrapper.update_params(total)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before))


def _lidar_batch(tmp_path):
    init_default_scope("pc_kd")
    cfg = Config.fromfile(DRIVING / "supervised_centerpoint-pillar_none_synthetic-driving.py")
    ds_cfg = copy.deepcopy(cfg.train_dataloader.dataset)
    ds_cfg.update(data_root=str(tmp_path), num_samples=2, image_hw=(48, 96), num_objects=12)
    dataset = DATASETS.build(ds_cfg)
    np.random.seed(0)
    return cfg, pseudo_collate([dataset[0], dataset[1]])


def test_bfloat16_optim_wrapper_trains_the_lidar_detector_in_bfloat16_on_the_cpu(tmp_path):
    """The forward runs in bfloat16 (the backbone's convolutions), losses, gradients, parameters and optimiser
    state stay float32, and the first step's loss and update are float32's within bfloat16's rounding."""
    from mmengine.optim import OptimWrapper

    from pc_kd.engine import BFloat16OptimWrapper

    cfg, batch = _lidar_batch(tmp_path)
    runs = {}
    for name, wrapper_cls in (("bf16", BFloat16OptimWrapper), ("fp32", OptimWrapper)):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model).train()
        before = [p.detach().clone() for p in model.parameters()]
        seen = []
        model.backbone.register_forward_hook(lambda m, i, o: seen.append(o[0].dtype))
        wrapper = wrapper_cls(optimizer=torch.optim.SGD(model.parameters(), lr=1e-2))
        log = model.train_step(copy.deepcopy(batch), wrapper)
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in log.values())
        step = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before)])
        runs[name] = dict(seen=seen, loss=float(log["loss"]), step=step)
    assert runs["bf16"]["seen"] == [torch.bfloat16] and runs["fp32"]["seen"] == [torch.float32]
    assert abs(runs["bf16"]["loss"] - runs["fp32"]["loss"]) <= 0.02 * abs(runs["fp32"]["loss"])
    assert F.cosine_similarity(runs["bf16"]["step"], runs["fp32"]["step"], dim=0) > MIN_GRAD_COSINE[torch.bfloat16]


def test_amp_bfloat16_without_a_gpu_takes_the_cpu_wrapper_and_float16_still_stops():
    from mmengine.registry import OPTIM_WRAPPERS

    from pc_kd.engine import BFloat16OptimWrapper, ConfigError, check_amp_option, enable_amp

    init_default_scope("pc_kd")
    base = dict(optim_wrapper=dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.1), loss_scale=512.0))
    cfg = Config(copy.deepcopy(base))
    enable_amp(cfg, "bfloat16", cuda_available=False)
    assert cfg.optim_wrapper.to_dict() == dict(type="BFloat16OptimWrapper", optimizer=dict(type="SGD", lr=0.1))
    check_amp_option(cfg, cuda_available=False)
    built = OPTIM_WRAPPERS.build(dict(type=cfg.optim_wrapper.type,
                                      optimizer=torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=0.1)))
    assert type(built) is BFloat16OptimWrapper
    with_gpu = Config(copy.deepcopy(base))
    enable_amp(with_gpu, "bfloat16", cuda_available=True)
    assert with_gpu.optim_wrapper.type == "AmpOptimWrapper" and with_gpu.optim_wrapper.dtype == "bfloat16"
    half = Config(copy.deepcopy(base))
    enable_amp(half, "float16", cuda_available=False)
    with pytest.raises(ConfigError, match="--amp bfloat16"):
        check_amp_option(half, cuda_available=False)
