"""Voxelization against dictionary loops and spconv's PointToVoxel; determinism; point <-> voxel maps."""
import importlib.util

import numpy as np
import pytest
import torch

from pc_kd.voxel import voxel_reduce, voxel_to_point, voxelize

SIZE = (0.5, 0.7, 0.3)


def _clouds(sizes, seed=0):
    rng = np.random.default_rng(seed)
    clouds = [rng.normal(b, 1.3, (n, 4)) for b, n in enumerate(sizes)]
    points = torch.from_numpy(np.concatenate(clouds))
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return clouds, points, batch


@pytest.mark.parametrize("sizes", [(1,), (7, 1, 33)])
def test_dynamic_matches_a_dictionary_loop(sizes):
    clouds, points, batch = _clouds(sizes)
    vox = voxelize(points, SIZE, batch_index=batch)
    ref = {}
    for b, cloud in enumerate(clouds):
        lo = cloud[:, :3].min(0)
        for p in cloud:
            key = (b, *np.floor((p[:3] - lo) / SIZE).astype(int))
            ref[key] = ref.get(key, 0) + 1
    got = {(int(b), *c): int(n) for b, c, n in zip(vox.batch, vox.coords.tolist(), vox.num_points)}
    assert got == ref
    order = [(b, z, y, x) for b, x, y, z in got]
    assert order == sorted(order)  # voxels in (batch, z, y, x) order
    for i, (p, v) in enumerate(zip(points.tolist(), vox.point2voxel.tolist())):
        b = int(batch[i])
        assert tuple(vox.coords[v].tolist()) == tuple(np.floor((np.array(p[:3]) - clouds[b][:, :3].min(0)) / SIZE)
                                                     .astype(int))
    assert all(int(vox.coords[:, i].max()) < vox.spatial_shape[i] for i in range(3))


def test_point_range_drops_outside_points():
    _, points, _ = _clouds((200,), seed=1)
    rng = (-1.0, -1.4, -0.9, 1.0, 1.4, 1.2)  # a whole number of voxels along each axis
    vox = voxelize(points, SIZE, rng)
    inside = ((points[:, :3] >= torch.tensor(rng[:3])) & (points[:, :3] < torch.tensor(rng[3:]))).all(1)
    assert ((vox.point2voxel >= 0) == inside).all()
    assert vox.spatial_shape == (4, 4, 7)
    expected = torch.floor((points[inside, :3] - torch.tensor(rng[:3])) / torch.tensor(SIZE)).long()
    assert torch.equal(vox.coords[vox.point2voxel[inside]].long(), expected)


def test_hard_mode_keeps_the_first_points_of_each_voxel_and_first_voxels():
    _, points, _ = _clouds((300,), seed=2)
    vox = voxelize(points, 1.0, mode="hard", max_points_per_voxel=3, max_voxels=10)
    assert len(vox.coords) == 10 and vox.voxels.shape == (10, 3, 4)
    dyn = voxelize(points, 1.0)
    first_seen = []
    for v in dyn.point2voxel.tolist():
        if v not in first_seen:
            first_seen.append(v)
    chosen = sorted(first_seen[:10])
    assert torch.equal(vox.coords, dyn.coords[chosen])
    for row, v in enumerate(chosen):
        members = torch.nonzero(dyn.point2voxel == v).squeeze(1)[:3]
        assert int(vox.num_points[row]) == len(members)
        torch.testing.assert_close(vox.voxels[row, :len(members)], points[members])
        assert (vox.voxels[row, len(members):] == 0).all()
        assert torch.equal(torch.nonzero(vox.point2voxel == row).squeeze(1), members)


def test_output_is_deterministic_and_independent_of_point_order():
    _, points, _ = _clouds((500,), seed=3)
    a, b = voxelize(points, SIZE), voxelize(points, SIZE)
    assert all(torch.equal(x, y) for x, y in zip(a[:4], b[:4]))
    perm = torch.randperm(len(points), generator=torch.Generator().manual_seed(0))
    c = voxelize(points[perm], SIZE)
    assert torch.equal(a.coords, c.coords) and torch.equal(a.num_points, c.num_points)
    assert torch.equal(a.point2voxel[perm], c.point2voxel)


@pytest.mark.skipif(importlib.util.find_spec("spconv") is None, reason="spconv is not installed")
def test_hard_mode_matches_spconv_point_to_voxel():
    from spconv.pytorch.utils import PointToVoxel

    g = torch.Generator().manual_seed(4)
    points = (torch.rand(5000, 4, generator=g) * torch.tensor([12.0, 12.0, 5.0, 1.0])
              - torch.tensor([6.0, 6.0, 2.5, 0.0]))
    rng = [-5.0, -5.0, -2.0, 5.0, 5.0, 2.0]
    ref_vox, ref_idx, ref_num = PointToVoxel(vsize_xyz=[0.5, 0.5, 0.5], coors_range_xyz=rng, num_point_features=4,
                                             max_num_voxels=100000, max_num_points_per_voxel=5)(points)
    vox = voxelize(points, 0.5, rng, mode="hard", max_points_per_voxel=5)
    ours = {tuple(c): int(n) for c, n in zip(vox.coords.flip(1).tolist(), vox.num_points.tolist())}
    ref = {tuple(c): int(n) for c, n in zip(ref_idx.tolist(), ref_num.tolist())}  # spconv: (z, y, x)
    assert ours == ref
    assert torch.equal(vox.spconv_indices()[:, 1:], vox.coords.flip(1))


def test_reduce_and_gather_back():
    _, points, _ = _clouds((80,), seed=5)
    vox = voxelize(points, 1.0, (-2, -2, -2, 2, 2, 2))
    feats = torch.randn(80, 3, dtype=torch.float64)
    mean = voxel_reduce(feats, vox, "mean")
    for v in range(len(vox.coords)):
        torch.testing.assert_close(mean[v], feats[vox.point2voxel == v].mean(0))
    back = voxel_to_point(mean, vox.point2voxel)
    dropped = vox.point2voxel < 0
    assert dropped.any() and (back[dropped] == 0).all()
    torch.testing.assert_close(back[~dropped], mean[vox.point2voxel[~dropped]])


@pytest.mark.parametrize("kwargs,match", [
    (dict(points=torch.zeros(0, 3)), "empty"),
    (dict(points=torch.tensor([[0.0, float("nan"), 0.0]])), "1 points have NaN or inf"),
    # with a range: the CPU paths (their own count) and the sorting path say the same
    (dict(points=torch.tensor([[0.0, float("nan"), 0.0], [float("inf"), 0.0, 0.0], [0.5, 0.5, 0.5]]),
          point_range=(0, 0, 0, 1, 1, 1)), "2 points have NaN or inf"),
    (dict(points=torch.tensor([[0.0, float("nan"), 0.0], [float("inf"), 0.0, 0.0], [0.5, 0.5, 0.5]]),
          point_range=(0, 0, 0, 1, 1, 1), backend="torch"), "2 points have NaN or inf"),
    (dict(voxel_size=0.0), "voxel_size must be positive"),
    (dict(voxel_size=(0.1, 0.1)), "voxel_size must be positive"),
    (dict(point_range=(0, 0, 0, 1, 1)), "point_range must be"),
    (dict(mode="hard"), "max_points_per_voxel"),
])
def test_bad_input(kwargs, match):
    args = dict(points=torch.zeros(2, 3), voxel_size=0.1)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        voxelize(args.pop("points"), args.pop("voxel_size"), **args)


@pytest.mark.parametrize("mode", ["dynamic", "hard"])
@pytest.mark.parametrize("point_range", [None, (-2.0, -1.5, -1.0, 3.1, 2.9, 2.2)])
@pytest.mark.parametrize("grid", ["dense", "hash"])
@pytest.mark.parametrize("max_voxels", [None, 40, 1])
def test_cpu_paths_equal_the_sorting_path(mode, point_range, grid, max_voxels):
    """On CPU numba passes group the points through a dense cell table (at most 8 cells per point) or a hash table
    (larger grids), with or without a voxel cap; the sorting path (``backend="torch"``, what GPUs take) must give
    the very same tensors."""
    from pc_kd.voxel.voxelize import _use_dense

    _, points, batch = _clouds((301, 1, 77, 0, 250), seed=4)  # cloud 3 is empty
    size = SIZE if grid == "dense" else 0.004
    kwargs = dict(point_range=point_range, mode=mode, batch_index=batch, batch_size=5, max_voxels=max_voxels,
                  max_points_per_voxel=3 if mode == "hard" else None)
    cpu = voxelize(points, size, **kwargs)
    num_keys = 5 * int(np.prod(cpu.spatial_shape))
    assert _use_dense(points, num_keys) == (grid == "dense")
    sorting = voxelize(points, size, backend="torch", **kwargs)
    for name, a, b in zip(cpu._fields, cpu, sorting):
        if isinstance(a, torch.Tensor):
            assert a.dtype == b.dtype and torch.equal(a, b), name
        else:
            assert a == b, name
    if max_voxels is not None:
        assert len(cpu.coords) == max_voxels
    elif grid == "dense":  # points outside the range or beyond a voxel's 3 are dropped (-1); else all are kept
        assert bool((cpu.point2voxel == -1).any()) == (point_range is not None or mode == "hard")
    assert cpu.num_points.max() <= (3 if mode == "hard" else len(points))


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="backend must be 'auto' or 'torch', got 'cuda'"):
        voxelize(torch.zeros(2, 3), 0.1, backend="cuda")
