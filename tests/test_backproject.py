"""backproject_features: the PyTorch twin against per-point loops (and grid_sample), the Triton kernel
(interpreted on CPU) against the twin, forward and gradients, odd sizes, empty and invisible inputs."""
import pytest
import torch
import torch.nn.functional as F

from pc_kd.ops.backproject import triton_available
from pc_kd.ops.backproject.function import view_pairs_from_groups
from pc_kd.projection import backproject_features, project_points, splat_zbuffer, zbuffer_visibility
from pc_kd.projection.backproject import ViewPlan

needs_triton = pytest.mark.skipif(not triton_available(), reason="triton is not installed (pip install triton)")
# The kernels compile for the GPU when there is one; on CPU conftest.py makes Triton interpret them.
KERNEL_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _on_kernel_device(points, feats, lidar2img, image_hw):
    return points.to(KERNEL_DEVICE), feats.to(KERNEL_DEVICE), lidar2img.to(KERNEL_DEVICE), image_hw


def _scene(n=37, v=3, c=5, feat_hw=(7, 9), image_hw=(21, 36), seed=0, dtype=torch.float64):
    """Points in front of V cameras looking along +z from shifted positions; odd sizes by default."""
    g = torch.Generator().manual_seed(seed)
    points = torch.rand(n, 3, generator=g, dtype=torch.float64) * torch.tensor([9.0, 3.0, 2.0]) + torch.tensor(
        [-4.5, -1.5, 3.0])
    H, W = image_hw
    lidar2img = torch.zeros(v, 4, 4, dtype=torch.float64)
    for i in range(v):
        K = torch.tensor([[W * 0.8, 0, W / 2, 0], [0, H * 0.8, H / 2, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]],
                         dtype=torch.float64)
        pose = torch.eye(4, dtype=torch.float64)
        pose[:3, 3] = torch.tensor([0.7 * (i - 1), 0.3 * i, -0.2 * i])
        lidar2img[i] = K @ pose
    feats = torch.randn(v, c, *feat_hw, generator=g, dtype=dtype)
    return points, feats, lidar2img, image_hw


def _naive(points, feats, lidar2img, image_hw, sampling, reduce, border=0, visible=None):
    """One view at a time, one point at a time; samples through F.grid_sample (an independent oracle)."""
    H, W = image_hw
    V, C = feats.shape[:2]
    outs, counts = [], []
    for n in range(points.shape[0]):
        samples = []
        for v in range(V):
            p = lidar2img[v] @ torch.cat([points[n], points.new_ones(1)])
            z = p[2]
            if z <= 1e-5:
                continue
            u, q = p[0] / z, p[1] / z
            if not (border <= u < W - border and border <= q < H - border):
                continue
            if visible is not None and not visible[v, n]:
                continue
            grid = torch.stack([2 * u / W - 1, 2 * q / H - 1]).to(feats.dtype).view(1, 1, 1, 2)
            s = F.grid_sample(feats[v:v + 1], grid, mode=sampling, padding_mode="border", align_corners=False)
            samples.append(s.view(C))
        counts.append(len(samples))
        if not samples:
            outs.append(feats.new_zeros(C) * feats.sum())
            continue
        stack = torch.stack(samples)
        outs.append({"mean": stack.mean(0), "sum": stack.sum(0), "max": stack.max(0).values}[reduce])
    return torch.stack(outs), torch.tensor(counts)


@pytest.mark.parametrize("sampling", ["bilinear", "nearest"])
@pytest.mark.parametrize("reduce", ["mean", "max", "sum"])
@pytest.mark.parametrize("feat_hw", [(7, 9), (21, 36)])
def test_twin_matches_per_point_loop_forward_and_gradients(sampling, reduce, feat_hw):
    points, feats, lidar2img, image_hw = _scene(feat_hw=feat_hw)
    feats_a, feats_b = feats.clone().requires_grad_(True), feats.clone().requires_grad_(True)
    out, count = backproject_features(points, feats_a, lidar2img, image_hw, sampling=sampling, reduce=reduce,
                                      border=1, impl="torch")
    ref, ref_count = _naive(points, feats_b, lidar2img, image_hw, sampling, reduce, border=1)
    assert count.tolist() == ref_count.tolist() and 0 < int((count == 0).sum()) < len(count)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    grad = torch.randn_like(ref)
    (out * grad).sum().backward()
    (ref * grad).sum().backward()
    torch.testing.assert_close(feats_a.grad, feats_b.grad, rtol=1e-10, atol=1e-12)


def test_gradcheck_float64():
    points, feats, lidar2img, image_hw = _scene(n=9, v=2, c=2, feat_hw=(5, 6))
    feats.requires_grad_(True)
    for reduce in ("mean", "sum"):
        assert torch.autograd.gradcheck(
            lambda f: backproject_features(points, f, lidar2img, image_hw, reduce=reduce, impl="torch")[0],
            (feats,))


def test_depth_visibility_matches_the_loop():
    points, feats, lidar2img, image_hw = _scene(n=40, seed=3)
    H, W = image_hw
    g = torch.Generator().manual_seed(1)
    depth_maps = 3.0 + 2.0 * torch.rand(3, H, W, generator=g, dtype=torch.float64)
    depth_maps[:, :3] = 0  # no depth measured there
    out, count = backproject_features(points, feats, lidar2img, image_hw, visibility="depth", depth_maps=depth_maps,
                                      depth_tol=0.2, impl="torch")
    visible = torch.zeros(3, len(points), dtype=torch.bool)
    for v in range(3):
        for n in range(len(points)):
            p = lidar2img[v] @ torch.cat([points[n], points.new_ones(1)])
            u, q = int(p[0] / p[2]), int(p[1] / p[2])
            if p[2] > 0 and 0 <= u < W and 0 <= q < H:
                d = depth_maps[v, q, u]
                visible[v, n] = bool(d > 0 and abs(d - p[2]) <= 0.2 * d)
    ref, ref_count = _naive(points, feats, lidar2img, image_hw, "bilinear", "mean", visible=visible)
    assert count.tolist() == ref_count.tolist() and 0 < int(visible.sum()) < visible.numel()
    torch.testing.assert_close(out, ref)


def test_zbuffer_visibility_is_applied():
    points, feats, lidar2img, image_hw = _scene(n=60, seed=4)
    _, count = backproject_features(points, feats, lidar2img, image_hw, visibility="zbuffer", depth_tol=0.01,
                                    zbuffer_radius=1, impl="torch")
    visible = zbuffer_visibility(points, lidar2img, image_hw, radius_px=1, depth_tol=0.01)
    assert count.tolist() == visible.sum(0).tolist()


@pytest.mark.parametrize("visibility", ["none", "depth"])
@pytest.mark.parametrize("sampling", ["bilinear", "nearest"])
@pytest.mark.parametrize("feat_hw", [(21, 36), (5, 9)])
def test_cpu_view_pairs_equal_the_pytorch_geometry_bit_for_bit(visibility, sampling, feat_hw):
    # the CPU twin's fused numba pass against the PyTorch projection, tests and sample_taps: same rows, taps and
    # weights, ordered by the first tap; a border, a depth map at stride 3 and a scene that starts at row 7
    points, _, lidar2img, image_hw = _scene(n=400, v=3, seed=11)
    proj = project_points(points, lidar2img, image_hw)
    depth = (proj.depth * (1 + 0.3 * torch.rand(proj.depth.shape, generator=torch.Generator().manual_seed(2)))).float()
    depth_maps = torch.stack([splat_zbuffer(proj.uv[i], depth[i], image_hw, 1, valid=proj.valid[i]).depth
                              for i in range(3)])[:, ::3, ::3].contiguous()
    depth_maps[torch.isinf(depth_maps)] = 0
    plan = ViewPlan(points, lidar2img, image_hw, 2, visibility, depth_maps, 0.1, 3, 2, point0=7, view0=4)
    fused = list(plan.view_pairs(feat_hw, sampling == "bilinear", torch.float32))
    reference = list(view_pairs_from_groups(plan, feat_hw, sampling == "bilinear", torch.float32))
    assert [p.view for p in fused] == [p.view for p in reference] == [4, 5, 6]
    assert sum(p.points.numel() for p in fused) > 100
    for a, b in zip(fused, reference):
        assert (a.index[0].diff() >= 0).all() and a.points.min() >= 7
        order_a, order_b = (torch.argsort(p.index[0] * 1000 + p.points) for p in (a, b))
        assert torch.equal(a.points[order_a], b.points[order_b])
        assert torch.equal(a.index[:, order_a], b.index[:, order_b])
        if sampling == "bilinear":
            assert torch.equal(a.weight[:, order_a], b.weight[:, order_b])


@pytest.mark.parametrize("impl", ["torch", pytest.param("triton", marks=needs_triton)])
@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_ragged_batch_equals_per_scene_calls_forward_and_gradients(impl, reduce):
    # three scenes, the middle one without points: one call fills one output, scene by scene
    a = _on_kernel_device(*_scene(n=11, v=2, seed=5, dtype=torch.float32))
    b = _on_kernel_device(*_scene(n=17, v=3, seed=6, dtype=torch.float32))
    feats = torch.cat([a[1], b[1][:1], b[1]]).requires_grad_(True)
    lidar2img = torch.cat([a[2], b[2][:1], b[2]])
    out, count = backproject_features(torch.cat([a[0], b[0]]), feats, lidar2img, a[3], reduce=reduce,
                                      offset=torch.tensor([11, 11, 28]), view_offset=torch.tensor([2, 3, 6]),
                                      impl=impl)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(0)).to(out.device)
    (out * grad).sum().backward()
    assert out.shape == (28, 5)
    assert (feats.grad[2] == 0).all()  # the view of the empty scene
    for (points, f, lidar2img, hw), rows, views in ((a, slice(0, 11), slice(0, 2)), (b, slice(11, 28), slice(3, 6))):
        f = f.clone().requires_grad_(True)
        ref, ref_count = backproject_features(points, f, lidar2img, hw, reduce=reduce, impl=impl)
        (ref * grad[rows]).sum().backward()
        torch.testing.assert_close(out[rows], ref, rtol=0, atol=0)
        assert count[rows].tolist() == ref_count.tolist()
        torch.testing.assert_close(feats.grad[views], f.grad, rtol=0, atol=0)


def test_ragged_batch_offsets_must_be_cumulative():
    points, feats, lidar2img, image_hw = _scene(n=10, v=2)
    with pytest.raises(ValueError, match="cumulative"):
        backproject_features(points, feats, lidar2img, image_hw, offset=torch.tensor([6, 4, 10]),
                             view_offset=torch.tensor([1, 1, 2]))


@pytest.mark.parametrize("impl", ["torch", pytest.param("triton", marks=needs_triton)])
def test_empty_behind_and_invisible_points(impl):
    points, feats, lidar2img, image_hw = _on_kernel_device(*_scene(dtype=torch.float32))
    empty, count = backproject_features(points[:0], feats, lidar2img, image_hw, impl=impl)
    assert empty.shape == (0, 5) and count.shape == (0,)
    behind = points * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64, device=points.device)  # behind every camera
    out, count = backproject_features(behind, feats.requires_grad_(True), lidar2img, image_hw, reduce="max",
                                      impl=impl)
    assert (count == 0).all() and (out == 0).all()
    out.sum().backward()
    assert (feats.grad == 0).all()


@needs_triton
@pytest.mark.parametrize("sampling", ["bilinear", "nearest"])
@pytest.mark.parametrize("reduce", ["mean", "max", "sum"])
def test_triton_kernel_matches_twin(sampling, reduce):
    points, feats, lidar2img, image_hw = _on_kernel_device(
        *_scene(n=45, v=3, c=70, feat_hw=(5, 9), dtype=torch.float32, seed=7))
    fa, fb = feats.clone().requires_grad_(True), feats.clone().requires_grad_(True)
    out_t, cnt_t = backproject_features(points, fa, lidar2img, image_hw, sampling=sampling, reduce=reduce,
                                        border=1, impl="triton")
    out_r, cnt_r = backproject_features(points, fb, lidar2img, image_hw, sampling=sampling, reduce=reduce,
                                        border=1, impl="torch")
    assert cnt_t.tolist() == cnt_r.tolist()
    # compiled for CUDA the kernel's bilinear weights use fused multiply-adds: a few float32 ulps of |feats| ~ 1
    torch.testing.assert_close(out_t, out_r, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out_r)
    (out_t * grad).sum().backward()
    (out_r * grad).sum().backward()
    torch.testing.assert_close(fa.grad, fb.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("sampling", ["bilinear", "nearest"])
@pytest.mark.parametrize("reduce", ["mean", "max"])
def test_twin_reads_channels_last_maps_bit_for_bit(sampling, reduce):
    points, feats, lidar2img, image_hw = _scene(n=40, c=16, feat_hw=(9, 13), dtype=torch.float32, seed=8)
    cl = feats.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    feats.requires_grad_(True)
    out_cl, _ = backproject_features(points, cl, lidar2img, image_hw, sampling=sampling, reduce=reduce, impl="torch")
    out, _ = backproject_features(points, feats, lidar2img, image_hw, sampling=sampling, reduce=reduce, impl="torch")
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (out_cl * grad).sum().backward()
    (out * grad).sum().backward()
    assert torch.equal(out_cl, out) and torch.equal(cl.grad, feats.grad)


@needs_triton
def test_triton_kernel_reads_channels_last_maps():
    points, feats, lidar2img, image_hw = _on_kernel_device(*_scene(n=20, c=16, dtype=torch.float32, seed=8))
    cl = feats.contiguous(memory_format=torch.channels_last)
    out_t, _ = backproject_features(points, cl, lidar2img, image_hw, impl="triton")
    out_r, _ = backproject_features(points, feats, lidar2img, image_hw, impl="torch")
    torch.testing.assert_close(out_t, out_r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("impl", ["torch", pytest.param("triton", marks=needs_triton)])
@pytest.mark.parametrize("sampling", ["bilinear", "nearest"])
def test_max_gradient_goes_to_the_first_of_tied_views(impl, sampling):
    points, feats, lidar2img, image_hw = _on_kernel_device(*_scene(n=30, v=2, c=4, dtype=torch.float32, seed=9))
    # views 1 and 2 are the same camera with the same map: every max they attain is a tie
    feats = torch.cat([feats, feats[1:]]).requires_grad_(True)
    lidar2img = torch.cat([lidar2img, lidar2img[1:]])
    out, count = backproject_features(points, feats, lidar2img, image_hw, sampling=sampling, reduce="max",
                                      impl=impl)
    grad = torch.rand_like(out) + 0.5
    (out * grad).sum().backward()
    assert int((count == 3).sum()) > 5
    assert (feats.grad[2] == 0).all() and (feats.grad[1] != 0).any()
    # the gradient is that of the same max over the first two views only
    ref_feats = feats.detach()[:2].clone().requires_grad_(True)
    ref, _ = backproject_features(points, ref_feats, lidar2img[:2], image_hw, sampling=sampling, reduce="max",
                                  impl=impl)
    (ref * grad).sum().backward()
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(feats.grad[:2], ref_feats.grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("impl", ["torch", pytest.param("triton", marks=needs_triton)])
def test_points_a_float32_ulp_from_a_pixel_edge_sample_the_pixel_float64_gives(impl):
    # u = x / z lands just left of a pixel edge: float64 keeps it in pixel 9 (and 19), float32 rounds it
    # onto the edge (pixel 10, 20); both implementations must take the float64 pixel, as the loop does
    W = H = 32
    lidar2img = torch.eye(4, dtype=torch.float64)[None]
    edge = torch.tensor([10.0, 20.0], dtype=torch.float64)
    uv = edge - 1e-9
    assert (uv.float().floor() == edge.float()).all()
    points = torch.stack([uv, torch.full_like(uv, 5.5), torch.ones_like(uv)], 1)
    feats = torch.arange(W, dtype=torch.float32).repeat(H, 1)[None, None]  # a cell's value is its column
    out, count = backproject_features(points.to(KERNEL_DEVICE), feats.to(KERNEL_DEVICE),
                                      lidar2img.to(KERNEL_DEVICE), (H, W), sampling="nearest", impl=impl)
    assert count.tolist() == [1, 1] and out[:, 0].tolist() == [9.0, 19.0]


@pytest.mark.parametrize("kwargs,match", [
    (dict(points=torch.zeros(4, 2)), r"points must be \[N, 3\]"),
    (dict(feats=torch.zeros(3, 5, 0, 9)), "zero size"),
    (dict(lidar2img=torch.eye(4).expand(2, 4, 4)), r"lidar2img must be \[V, 4, 4\] with V = 3"),
    (dict(lidar2img=torch.full((3, 4, 4), float("nan"))), "NaN or inf"),
    (dict(visibility="depth"), "needs depth_maps"),
    (dict(visibility="depth", depth_maps=torch.ones(3, 10, 18)), r"depth_maps must be .* = \[3, 21, 36\]"),
    (dict(reduce="median"), "reduce must be one of"),
])
def test_bad_input_is_named(kwargs, match):
    points, feats, lidar2img, image_hw = _scene(dtype=torch.float32)
    args = dict(points=points, feats=feats, lidar2img=lidar2img, image_hw=image_hw)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        backproject_features(args.pop("points"), args.pop("feats"), args.pop("lidar2img"), args.pop("image_hw"),
                             **args)


def test_depth_stride_reads_the_reduced_depth_map_at_the_point_pixel_over_stride():
    """Depth maps at stride 2 hold random depths, with the true depth of every other point written into its
    reduced cell; visibility must follow a per-point lookup of cell (v // 2, u // 2)."""
    points, feats, lidar2img, image_hw = _scene(n=60, seed=9)
    (H, W), tol = image_hw, 0.1
    g = torch.Generator().manual_seed(1)
    half = 1 + 9 * torch.rand(3, H // 2, W // 2, generator=g, dtype=torch.float64)
    proj = project_points(points, lidar2img, image_hw)

    def cell(v, n):
        u, q = proj.uv[v, n].tolist()
        return v, min(int(q // 2), H // 2 - 1), min(int(u // 2), W // 2 - 1)

    for v in range(3):
        for n in range(0, len(points), 2):
            if proj.valid[v, n]:
                half[cell(v, n)] = proj.depth[v, n]
    visible = torch.zeros(3, len(points), dtype=torch.bool)
    for v in range(3):
        for n in range(len(points)):
            if proj.valid[v, n]:
                d = half[cell(v, n)]
                visible[v, n] = bool(abs(d - proj.depth[v, n]) <= tol * d)
    assert 0 < visible.sum() < proj.valid.sum()  # some points pass, some fail
    out, count = backproject_features(points, feats, lidar2img, image_hw, visibility="depth", depth_maps=half,
                                      depth_stride=2, depth_tol=tol)
    ref, ref_count = _naive(points, feats, lidar2img, image_hw, "bilinear", "mean", visible=visible)
    assert count.tolist() == ref_count.tolist()
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)
    # the same depths at full size (each cell 2 x 2 pixels, the odd last row / column repeated) agree
    full = half.repeat_interleave(2, 1).repeat_interleave(2, 2)
    full = torch.cat([full, full[:, -1:]], 1) if full.shape[1] < H else full
    full = torch.cat([full, full[:, :, -1:]], 2) if full.shape[2] < W else full
    _, count_full = backproject_features(points, feats, lidar2img, image_hw, visibility="depth", depth_maps=full,
                                         depth_tol=tol)
    assert count.tolist() == count_full.tolist()
    # ... while the reduced map read as if it were full size sees other points
    shifted = full.clone()
    shifted[:, :H // 2, :W // 2] = half
    _, count_wrong = backproject_features(points, feats, lidar2img, image_hw, visibility="depth",
                                          depth_maps=shifted, depth_tol=tol)
    assert count_wrong.tolist() != count.tolist()
