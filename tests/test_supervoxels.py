"""Super-voxels: every point labelled, deterministic, segments follow surfaces; real-scene purity; other
sources; the make_superpoints tool (parallel, resumable)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pc_kd.datasets.synthetic import make_indoor_scene
from pc_kd.structures.class_names import SCANNET20_NYU40_IDS, label_mapping
from pc_kd.utils.io import read_bin
from pc_kd.voxel import load_segment_file, scannet_mesh_segments, supervoxels, voxelize

ROOT = Path(__file__).resolve().parents[1]


def _purity(labels, semantic, ignore=255):
    keep = semantic != ignore
    conf = np.zeros((labels.max() + 1, 256), np.int64)
    np.add.at(conf, (labels[keep], semantic[keep]), 1)
    return conf.max(1).sum() / keep.sum()


@pytest.fixture(scope="module")
def room():
    return make_indoor_scene(11, num_points=30000)


def test_every_point_labelled_consecutive_and_deterministic(room):
    a = supervoxels(room.points[:, :3], room.points[:, 3:], voxel_size=0.05, seed_size=0.5)
    b = supervoxels(room.points[:, :3], room.points[:, 3:], voxel_size=0.05, seed_size=0.5)
    assert a.shape == (30000,) and a.dtype == np.int64 and np.array_equal(a, b)
    assert a.min() == 0 and set(np.unique(a)) == set(range(a.max() + 1))


def test_segments_follow_object_boundaries_better_than_a_grid(room):
    labels = supervoxels(room.points[:, :3], room.points[:, 3:], voxel_size=0.05, seed_size=0.5)
    grid = voxelize(torch.from_numpy(room.points[:, :3]).double(), 0.5).point2voxel.numpy()
    k, k_grid = labels.max() + 1, grid.max() + 1
    assert k <= k_grid  # no more segments than the grid of the seed size ...
    assert _purity(labels, room.instance) > _purity(grid, room.instance) + 0.02  # ... and cleaner instances


def test_colour_range_is_detected_and_bad_input_is_named(room):
    pts, rgb = room.points[:, :3], room.points[:, 3:]
    assert np.array_equal(supervoxels(pts, rgb), supervoxels(pts, rgb / 255.0))
    with pytest.raises(ValueError, match="colours must be in 0..1 or 0..255"):
        supervoxels(pts, rgb * 2)
    with pytest.raises(ValueError, match="empty"):
        supervoxels(np.zeros((0, 3)))
    bad = pts.copy()
    bad[5, 0] = np.nan
    with pytest.raises(ValueError, match="1 points have NaN or inf"):
        supervoxels(bad)
    with pytest.raises(ValueError, match=r"colors must be \[N, 3\]"):
        supervoxels(pts, rgb[:10])
    with pytest.raises(ValueError, match="must be positive"):
        supervoxels(pts, voxel_size=0.0)
    with pytest.raises(ValueError, match="unknown region_growing options"):
        supervoxels(pts, region_growing=dict(angle=5))


def test_region_growing_merges_planes(room):
    plain = supervoxels(room.points[:, :3], room.points[:, 3:], seed_size=0.5)
    merged = supervoxels(room.points[:, :3], room.points[:, 3:], seed_size=0.5, region_growing={})
    assert merged.max() < plain.max()
    floor = merged[room.semantic == 0]
    assert np.bincount(floor).max() / len(floor) > 0.8  # the floor is (nearly) one plane ...
    floor_plain = plain[room.semantic == 0]
    assert np.bincount(floor_plain).max() / len(floor_plain) < 0.1  # ... cut into many super-voxels without
    assert _purity(merged, room.semantic) > 0.9


def test_single_point_and_points_without_colour():
    assert supervoxels(np.zeros((1, 3))).tolist() == [0]
    labels = supervoxels(np.random.default_rng(0).uniform(0, 2, (500, 3)))
    assert len(labels) == 500


@pytest.mark.realdata
def test_scannet_purity_beats_the_grid_at_fewer_segments(real_data):
    scene = real_data / "scannet_scene0000_00"
    verts = read_bin(scene / "scene0000_00_vert_unaligned.bin", np.float32, 6)
    sem = label_mapping(SCANNET20_NYU40_IDS)[np.load(scene / "scene0000_00_sem_label_all.npy").astype(np.int64)]
    labels = supervoxels(verts[:, :3], verts[:, 3:], voxel_size=0.05, seed_size=0.42)
    assert labels.max() + 1 <= 1000 and _purity(labels, sem) >= 0.92
    grid = voxelize(torch.from_numpy(verts[:, :3]).double(), 0.4).point2voxel.numpy()
    assert _purity(grid, sem) < 0.86


def test_scannet_segs_and_segment_files(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"segIndices": [7, 7, 3, 9, 3]}))
    assert scannet_mesh_segments(tmp_path / "s.json", 5).tolist() == [1, 1, 0, 2, 0]
    with pytest.raises(ValueError, match="5 segIndices for 4 points"):
        scannet_mesh_segments(tmp_path / "s.json", 4)
    np.save(tmp_path / "a.npy", np.array([5, 5, 2]))
    np.array([4, 4, 1], np.int64).tofile(tmp_path / "b.bin")
    assert load_segment_file(tmp_path / "a.npy", 3).tolist() == [1, 1, 0]
    assert load_segment_file(tmp_path / "b.bin", 3).tolist() == [1, 1, 0]
    with pytest.raises(ValueError, match="3 labels for 2 points"):
        load_segment_file(tmp_path / "b.bin", 2)


@pytest.mark.slow
def test_make_superpoints_tool_is_parallel_and_resumable(tmp_path, synthetic_indoor_root):
    config = ROOT / "configs" / "supervised" / "supervised_spconv-unet_none_synthetic-indoor.py"
    cfg_opts = tmp_path / "cfg.py"
    cfg_opts.write_text(f"_base_ = ['{config}']\n"
                        f"train_dataloader = dict(dataset=dict(data_root='{synthetic_indoor_root}', num_scenes=2, "
                        f"num_views=2, image_hw=(120, 160), num_points=6000, seed=3))\n")
    out = tmp_path / "sp"
    cmd = [sys.executable, "tools/make_superpoints.py", str(cfg_opts), "--out", str(out), "--workers", "2"]
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "written 2, already there 0" in first.stdout
    files = sorted(out.glob("*.npy"))
    assert [f.name for f in files] == ["scene03000.npy", "scene03001.npy"]
    for f in files:
        pts = read_bin(synthetic_indoor_root / "points" / f.name.replace(".npy", ".bin"), np.float32, 6)
        assert np.load(f).shape == (len(pts),)
    stamp = files[0].stat().st_mtime_ns
    files[1].unlink()  # as if the run had been interrupted before this scene
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert "written 1, already there 1" in again.stdout and files[0].stat().st_mtime_ns == stamp
    assert not list(out.glob(".*.tmp"))
