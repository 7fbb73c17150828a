"""bev_pool: the twin against a per-point loop and the materialised product, the Triton kernel (interpreted
on CPU) against the twin, forward and gradients; odd sizes, points outside the grid, empty grids."""
import pytest
import torch

from pc_kd.ops import BEVGrid, bev_pool
from pc_kd.ops.backproject import triton_available
from pc_kd.ops.bev_pool import assign_cells

needs_triton = pytest.mark.skipif(not triton_available(), reason="triton is not installed (pip install triton)")
# The kernels compile for the GPU when there is one; on CPU conftest.py makes Triton interpret them.
KERNEL_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
GRID = BEVGrid(x_range=(-4.0, 5.0), y_range=(-3.0, 4.0), z_range=(-1.0, 1.0), cell=(1.0, 0.5))  # 14 x 9


def _inputs(b=2, n=3, d=5, h=3, w=7, c=6, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    depth = torch.rand(b, n, d, h, w, generator=g, dtype=dtype).softmax(2)
    context = torch.randn(b, n, c, h, w, generator=g, dtype=dtype)
    xyz = torch.rand(b, n, d, h, w, 3, generator=g, dtype=torch.float64) * torch.tensor([12.0, 10.0, 3.0]) \
        - torch.tensor([6.0, 4.5, 1.5])  # about a third of the points fall outside the grid
    return depth, context, xyz


def _naive_loop(depth, context, xyz, grid):
    b, n, d, h, w = depth.shape
    H, W = grid.shape
    out = torch.zeros(b, context.shape[2], H, W, dtype=context.dtype)
    for bi in range(b):
        for ni in range(n):
            for di in range(d):
                for y in range(h):
                    for x in range(w):
                        px, py, pz = xyz[bi, ni, di, y, x].tolist()
                        j = int((px - grid.x_range[0]) // grid.cell[0])
                        i = int((py - grid.y_range[0]) // grid.cell[1])
                        if 0 <= i < H and 0 <= j < W and grid.z_range[0] <= pz < grid.z_range[1]:
                            out[bi, :, i, j] += depth[bi, ni, di, y, x] * context[bi, ni, :, y, x]
    return out


def _materialised(depth, context, xyz, grid):
    """LSS-style: build the [B, Ncam, D, h, w, C] frustum features, then index_add them into the cells."""
    cells = assign_cells(xyz, grid)
    feats = depth[..., None] * context.permute(0, 1, 3, 4, 2)[:, :, None]
    keep = cells.cell >= 0
    out = torch.zeros(cells.num_cells, context.shape[2], dtype=context.dtype).index_add(0, cells.cell[keep],
                                                                                        feats[keep])
    H, W = grid.shape
    return out.view(depth.shape[0], H, W, -1).permute(0, 3, 1, 2)


def test_twin_matches_the_per_point_loop():
    depth, context, xyz = _inputs()
    out = bev_pool(depth, context, xyz, GRID, impl="torch")
    assert out.shape == (2, 6, 14, 9)
    torch.testing.assert_close(out, _naive_loop(depth, context, xyz, GRID), rtol=1e-12, atol=1e-12)
    outside = (assign_cells(xyz, GRID).cell < 0).float().mean()
    assert 0.2 < outside < 0.8


def test_twin_gradients_match_the_materialised_product():
    depth, context, xyz = _inputs(seed=1)
    a = [t.clone().requires_grad_(True) for t in (depth, context)]
    b = [t.clone().requires_grad_(True) for t in (depth, context)]
    out = bev_pool(*a, xyz, GRID, impl="torch")
    ref = _materialised(*b, xyz, GRID)
    torch.testing.assert_close(out, ref)
    grad = torch.randn_like(ref)
    (out * grad).sum().backward()
    (ref * grad).sum().backward()
    torch.testing.assert_close(a[0].grad, b[0].grad)
    torch.testing.assert_close(a[1].grad, b[1].grad)


def test_all_points_outside_give_zeros_and_zero_gradients():
    depth, context, xyz = _inputs(b=1, seed=2)
    depth.requires_grad_(True)
    out = bev_pool(depth, context, xyz + 100.0, GRID, impl="torch")
    assert (out == 0).all()
    out.sum().backward()
    assert (depth.grad == 0).all()


@needs_triton
@pytest.mark.parametrize("shape", [dict(b=2, n=3, d=5, h=3, w=7, c=6), dict(b=1, n=2, d=3, h=5, w=4, c=33)])
def test_triton_kernel_matches_twin(shape):
    depth, context, xyz = (t.to(KERNEL_DEVICE) for t in _inputs(seed=3, dtype=torch.float32, **shape))
    a = [t.clone().requires_grad_(True) for t in (depth, context)]
    b = [t.clone().requires_grad_(True) for t in (depth, context)]
    out_t = bev_pool(*a, xyz, GRID, impl="triton")
    out_r = bev_pool(*b, xyz, GRID, impl="torch")
    torch.testing.assert_close(out_t, out_r, rtol=1e-5, atol=1e-5)
    grad = torch.randn_like(out_r)
    (out_t * grad).sum().backward()
    (out_r * grad).sum().backward()
    torch.testing.assert_close(a[0].grad, b[0].grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a[1].grad, b[1].grad, rtol=1e-5, atol=1e-5)


@needs_triton
def test_triton_kernel_with_no_point_in_the_grid():
    depth, context, xyz = (t.to(KERNEL_DEVICE) for t in _inputs(b=1, seed=4, dtype=torch.float32))
    out = bev_pool(depth, context, xyz + 100.0, GRID, impl="triton")
    assert out.shape == (1, 6, 14, 9) and (out == 0).all()


@pytest.mark.parametrize("kwargs,match", [
    (dict(depth=torch.zeros(2, 3, 5, 3)), r"depth must be \[B, Ncam, D, h, w\]"),
    (dict(context=torch.zeros(2, 3, 6, 3, 8)), r"context must be \[B, Ncam, C, h, w\] = \[2, 3, C, 3, 7\]"),
    (dict(xyz=torch.zeros(2, 3, 5, 3, 7)), r"frustum_xyz must be \[B, Ncam, D, h, w, 3\]"),
    (dict(grid=((1.0, 0.0), (0, 1), (0, 1), (1, 1))), "x_range must be"),
    (dict(grid=((0, 1), (0, 1), (0, 1), (0.0, 1))), "cell must be positive"),
])
def test_bad_input_is_named(kwargs, match):
    depth, context, xyz = _inputs()
    args = dict(depth=depth, context=context, xyz=xyz, grid=GRID)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        bev_pool(args["depth"], args["context"], args["xyz"], args["grid"])
