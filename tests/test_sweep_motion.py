"""SweepMotion: the vectorised block matching against a float64 loop twin, known shifts, and the synthetic LiDAR."""
from pathlib import Path

import numpy as np
import pytest
import torch

from pc_kd.datasets.synthetic.driving import SWEEP_DT, lidar2ego_matrix, make_driving_scene, simulate_lidar
from pc_kd.models.backbones.sweep_motion import SweepMotion
from pc_kd.structures.class_names import NUSCENES_CLASSES

CELL = 0.8


def _points(cells, lag, z=0.0):
    """One point at the centre of each (ix, iy) cell of a grid starting at (0, 0): ``[N, 4]`` x y z lag."""
    cells = np.asarray(cells, dtype=np.float64).reshape(-1, 2)
    xy = (cells + 0.5) * CELL
    return torch.tensor(np.concatenate([xy, np.full((len(xy), 1), z), np.full((len(xy), 1), lag)], 1),
                        dtype=torch.float32)


def _motion(size=12, **kw):
    args = dict(radius=2, window=3, min_z=-1.0, temperature=0.02, shift_penalty=0.01)
    args.update(kw)
    return SweepMotion(point_cloud_range=(0, 0, -5, size * CELL, size * CELL, 3), cell=(CELL, CELL), **args)


def _loop_twin(key, earlier, dt, radius, window, temperature, penalty):
    """Per cell and shift, float64 loops: fraction of the block's key cells whose shifted cell is occupied earlier."""
    H, W = key.shape
    out = np.zeros((3, H, W))
    h = window // 2
    for y in range(H):
        for x in range(W):
            block = [(yy, xx) for yy in range(y - h, y + h + 1) for xx in range(x - h, x + h + 1)
                     if 0 <= yy < H and 0 <= xx < W and key[yy, xx]]
            if not block or dt <= 0:
                continue
            shifts, scores, matches = [], [], []
            for dy in range(-radius, radius + 1):
                for dx in range(-radius, radius + 1):
                    hit = sum(1 for yy, xx in block
                              if 0 <= yy + dy < H and 0 <= xx + dx < W and earlier[yy + dy, xx + dx])
                    matches.append(hit / len(block))
                    scores.append(matches[-1] - penalty * np.hypot(dx, dy))
                    shifts.append((dx, dy))
            w = np.exp((np.array(scores) - max(scores)) / temperature)
            w /= w.sum()
            d = (w[:, None] * np.array(shifts, dtype=np.float64)).sum(0)
            out[:2, y, x] = -d * CELL / dt
            out[2, y, x] = max(matches)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_loop_twin(seed):
    rng = np.random.default_rng(seed)
    size, dt = 11, 0.37  # odd grid, a lag that is not the synthetic one
    key = rng.random((size, size)) < 0.2
    earlier = rng.random((size, size)) < 0.2
    pts = torch.cat([_points(np.argwhere(key)[:, ::-1], 0.0), _points(np.argwhere(earlier)[:, ::-1], dt)])
    motion = _motion(size)
    got = motion([pts])[0].double().numpy()
    want = _loop_twin(key, earlier, dt, 2, 3, 0.02, 0.01)
    np.testing.assert_allclose(got, want, atol=2e-4)  # float32 softmax of the vectorised path


def test_known_shift_and_static_block():
    block = [(x, y) for x in range(2, 5) for y in range(3, 5)]  # 3 x 2 cells
    moved = [(x + 2, y - 1) for x, y in block]  # moved by (+2, -1) cells in 0.5 s
    static = [(x, y) for x in range(12, 15) for y in range(12, 14)]
    pts = torch.cat([_points(block, 0.5), _points(moved, 0.0), _points(static, 0.5), _points(static, 0.0)])
    out = _motion(20, window=5)([pts])[0]  # the window covers the block from each of its cells
    for x, y in moved:
        np.testing.assert_allclose(out[:2, y, x].numpy(), [2 * CELL / 0.5, -1 * CELL / 0.5], atol=1e-3)
        assert out[2, y, x] == pytest.approx(1.0)
    for x, y in static:
        np.testing.assert_allclose(out[:2, y, x].numpy(), [0.0, 0.0], atol=1e-3)
    assert out[:, 0, 19].abs().sum() == 0  # no key occupancy near: zeros


def test_ground_below_min_z_is_ignored():
    block = [(x, y) for x in range(6, 9) for y in range(6, 8)]
    moved = [(x + 1, y + 2) for x, y in block]
    ground = [(x, y) for x in range(20) for y in range(20)]  # the road, identical in both sweeps
    pts = torch.cat([_points(block, 0.5), _points(moved, 0.0), _points(ground, 0.5, z=-1.8),
                     _points(ground, 0.0, z=-1.8)])
    out = _motion(20, window=5)([pts])[0]
    x, y = moved[0]
    np.testing.assert_allclose(out[:2, y, x].numpy(), [CELL / 0.5, 2 * CELL / 0.5], atol=1e-3)
    with_ground = _motion(20, window=5, min_z=-5.0)([pts])[0]  # the road counted: everything matches at d = 0
    np.testing.assert_allclose(with_ground[:2, y, x].numpy(), [0.0, 0.0], atol=1e-3)


def test_no_earlier_sweep_and_bad_input():
    motion = _motion(12)
    out = motion([_points([(3, 3), (4, 3)], 0.0), torch.zeros(0, 4)])
    assert out.shape == (2, 3, 12, 12) and out.abs().sum() == 0
    with pytest.raises(ValueError, match=r"sample 0 has points \(5, 3\).*time lag"):
        motion([torch.zeros(5, 3)])
    with pytest.raises(ValueError, match="window is 4"):
        _motion(12, window=4)


def test_synthetic_lidar_moving_objects():
    """On the synthetic driving LiDAR (key sweep + the sweep 0.5 s earlier), the estimate at the centres of cars,
    trucks and pedestrians is closer to their velocity than zero is, by far."""
    motion = SweepMotion(point_cloud_range=(-32, -32, -5, 32, 32, 3), cell=(CELL, CELL))
    ego2lidar = np.linalg.inv(lidar2ego_matrix())
    errors, speeds = [], []
    for seed in range(3):
        scene = make_driving_scene(seed, num_objects=30)
        key, _ = simulate_lidar(scene, seed)
        earlier, _ = simulate_lidar(scene, seed, time_offset=-SWEEP_DT)
        pts = torch.cat([torch.from_numpy(np.c_[key[:, :3], np.zeros(len(key))]),
                         torch.from_numpy(np.c_[earlier[:, :3], np.full(len(earlier), SWEEP_DT)])]).float()
        out = motion([pts])[0].double().numpy()
        for box, velocity, label in zip(scene.boxes_ego, scene.velocity_ego, scene.labels):
            centre = ego2lidar[:3, :3] @ box[:3] + ego2lidar[:3, 3]
            v = ego2lidar[:2, :2] @ velocity
            ix, iy = int(np.floor((centre[0] + 32) / CELL)), int(np.floor((centre[1] + 32) / CELL))
            if NUSCENES_CLASSES[label] not in ("car", "truck", "pedestrian") or np.hypot(*centre[:2]) > 30:
                continue  # cones and barriers do not move
            errors.append(np.linalg.norm(out[:2, iy, ix] - v))
            speeds.append(np.linalg.norm(v))
    assert len(errors) >= 20 and sum(s > 1 for s in speeds) >= 8
    assert np.mean(errors) < 0.5 * np.mean(speeds), (np.mean(errors), np.mean(speeds), len(errors))


def test_the_detector_gives_the_head_the_motion_beside_the_neck_output():
    """``BEVDetector(motion=...)``: ``extract`` returns the cue (a block moved by 3 cells reads 4.8 m/s, a static
    one 0), ``bev_high`` stays the neck output (96 channels), and the head reads both stacked on channels."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from pc_kd.models.distillers.bev_distiller import bev_channels
    from pc_kd.registry import MODELS

    init_default_scope("pc_kd")
    config = Path(__file__).resolve().parents[1] / "configs/supervised/" \
        "supervised_centerpoint-pillar-motion_none_synthetic-driving.py"
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config).model).eval()
    assert bev_channels(model) == (64, 96)
    block = [(x, y) for x in range(40, 45) for y in range(40, 43)]
    static = torch.cat([_points(block, 0.5, z=0.0), _points(block, 0.0, z=0.0)])
    static = torch.cat([static[:, :3], torch.full((len(static), 1), 50.0), static[:, 3:]], 1)  # x y z intensity lag
    static[:, :2] -= 32.0  # the grid starts at -32 m
    moving = static.clone()
    moving[: len(block), 0] -= 3 * CELL  # the earlier sweep 3 cells behind: 4.8 m/s along x
    outs = [model.extract({"points": [pts, torch.zeros(0, 5)]}) for pts in (static, moving)]
    for out in outs:
        assert out["motion"].shape == (2, 3, 80, 80) and out["bev_high"].shape[1] == 96
    assert outs[0]["motion"][0, 0, 41, 42] == pytest.approx(0.0, abs=1e-4)
    assert outs[1]["motion"][0, 0, 41, 42] == pytest.approx(3 * CELL / 0.5, abs=1e-2)
    out = outs[1]
    with torch.no_grad():
        stacked = model.head(torch.cat([out["bev_high"], out["motion"]], 1))
        without = model.head(model.head_input(out["bev_high"], torch.zeros_like(out["motion"])))
    torch.testing.assert_close(out["head"][0]["vel"], stacked[0]["vel"], atol=0, rtol=0)
    assert not torch.allclose(out["head"][0]["vel"][0, :, 41, 42], without[0]["vel"][0, :, 41, 42])
    with pytest.raises(ValueError, match="motion cue needs LiDAR"):
        cfg = Config.fromfile(config).model
        cfg.lidar_encoder = None
        cfg.camera_encoder = Config.fromfile(config.parent / "supervised_lss-camera_none_synthetic-driving.py") \
            .model.camera_encoder
        MODELS.build(cfg)
