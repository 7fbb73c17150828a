"""Two CPU processes under torchrun (gloo), as ``tools/dist_train.sh`` starts them: both ranks train the synthetic
rooms (with SyncBN), one checkpoint is written (with every rank's random states), a resumed 2-process run continues
from it and ends bit-exactly where an uninterrupted one does, and the test metric of 2 processes
(each rank evaluating half the split, gathered before the Hungarian matching) equals 1 process's exactly; the
clustering hooks' super-point features and k-means agree on every rank."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pc_kd.engine import load_local_checkpoint

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "configs/supervised/supervised_spconv-unet_none_synthetic-indoor.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra):
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHON=sys.executable, **extra)


def _run(cmd, env, timeout=300) -> str:
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    return log


@pytest.fixture(scope="module")
def rooms(tmp_path_factory) -> Path:
    """Where the runs generate 4 training rooms and 3 validation rooms (rank 0 writes them, the other rank waits):
    an odd split, so one rank pads its share of the test with a repeated room."""
    return tmp_path_factory.mktemp("rooms")


def _options(rooms: Path, epochs: int, *extra: str):
    small = dict(data_root=rooms, seed=5, num_views=2, image_hw=(60, 80), num_points=4000)
    opts = [f"train_cfg.max_epochs={epochs}", "test_evaluator.type=HungarianSegMetric", *extra]
    for loader, scenes in (("train", 4), ("val", 3), ("test", 3)):
        opts += [f"{loader}_dataloader.dataset.{k}={v}".replace(" ", "") for k, v in small.items()]
        opts.append(f"{loader}_dataloader.dataset.num_scenes={scenes}")
    return ["--cfg-options", *opts]


# each rank augments with its own seed; the cosine schedule ends at epoch 2 in every run (by default it ends at
# max_epochs, and a resumed scheduler keeps the end it was saved with: the 1-epoch run's)
DIFF_SEEDS = ("randomness.seed=0", "randomness.diff_rank_seed=True", "param_scheduler.0.end=2")


@pytest.mark.slow
def test_two_processes_train_resume_and_evaluate_as_one(rooms, tmp_path):
    work = tmp_path / "work"
    log = _run(["bash", "tools/dist_train.sh", CONFIG, "2", "--work-dir", str(work),
                *_options(rooms, 1, "sync_bn=torch", *DIFF_SEEDS)], _env(PORT=str(_free_port())))
    assert (work / "epoch_1.pth").is_file()
    assert "BatchNorm layers share their batch statistics across the 2 processes" in log  # rank 0 logs it
    assert log.count("Saving checkpoint at 1 epochs") == 1, log[-3000:]  # rank 0 only
    assert "Distributed training: True" in next(work.glob("*/*.log")).read_text()

    saved = load_local_checkpoint(str(work / "epoch_1.pth"))
    per_rank = saved["random_states_per_rank"]  # every rank's, gathered before rank 0 wrote
    assert len(per_rank) == 2 and not torch.equal(per_rank[0]["torch"], per_rank[1]["torch"])  # seeded apart
    assert torch.equal(per_rank[0]["torch"], saved["random_states"]["torch"])

    log = _run(["bash", "tools/dist_train.sh", CONFIG, "2", "--work-dir", str(work), "--resume", "auto",
                *_options(rooms, 2, "sync_bn=torch", *DIFF_SEEDS)], _env(PORT=str(_free_port())))
    assert "resumed epoch: 1" in log, log[-3000:]
    assert "none are restored" not in log
    assert (work / "epoch_2.pth").is_file()
    # bit-exact: the resumed 2-process run ends where an uninterrupted one does (each rank got its own states back)
    _run(["bash", "tools/dist_train.sh", CONFIG, "2", "--work-dir", str(tmp_path / "uninterrupted"),
          *_options(rooms, 2, "sync_bn=torch", *DIFF_SEEDS)], _env(PORT=str(_free_port())))
    resumed = load_local_checkpoint(str(work / "epoch_2.pth"))["state_dict"]
    uninterrupted = load_local_checkpoint(str(tmp_path / "uninterrupted" / "epoch_2.pth"))["state_dict"]
    assert resumed.keys() == uninterrupted.keys()
    assert all(torch.equal(resumed[k], uninterrupted[k]) for k in resumed), "the resumed run drifted"

    metrics = {}
    for procs in (1, 2):
        out = tmp_path / f"test_{procs}"
        cmd = ([sys.executable, "tools/test.py"] if procs == 1 else
               [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
                "tools/test.py"])
        cmd += [CONFIG, str(work / "epoch_2.pth"), "--work-dir", str(tmp_path / f"test_work_{procs}"), "--out",
                str(out), *_options(rooms, 2)]
        if procs == 2:
            cmd += ["--launcher", "pytorch"]
        _run(cmd, _env())
        metrics[procs] = json.loads((out / "metrics.json").read_text())
        assert len(list(out.glob("*.npy"))) == 3  # every room once, the padded repeat not written twice
    assert "unsup/miou" in metrics[1] and metrics[1] == metrics[2]


_HOOK_WORKER = r'''
"""Run by torchrun with 2 processes: each rank pools its shard of 5 scenes (rank 1's padded with scene 0 again, as
mmengine's DefaultSampler pads), then the clustering hooks' exchange and rank-0 k-means."""
import sys
from types import SimpleNamespace

import torch
import torch.distributed as dist

from pc_kd.engine.inference import on_rank0, superpoint_features, superpoint_features_all_ranks
from pc_kd.heads.clustering import kmeans


class Dataset:
    def __init__(self, n):
        self.paths = [f"points/scene{i:02d}.bin" for i in range(n)]

    def __len__(self):
        return len(self.paths)

    def get_data_info(self, i):
        return dict(lidar_path=self.paths[i])


class Loader(list):
    """Batches of one scene: features from the scene's index, 12 points in 3 super-points."""
    def __init__(self, dataset, indices):
        super().__init__()
        self.dataset = dataset
        for i in indices:
            g = torch.Generator().manual_seed(i)
            sample = SimpleNamespace(metainfo=dict(lidar_path=dataset.paths[i]),
                                     superpoints=torch.arange(12) % 3)
            self.append(dict(inputs=dict(points=[torch.randn(12, 4, generator=g)]), data_samples=[sample]))


class Model(torch.nn.Module):
    def data_preprocessor(self, batch, training):
        return batch

    def point_features_list(self, inputs):
        return [p * 2.0 for p in inputs["points"]]


dist.init_process_group("gloo")
rank = dist.get_rank()
dataset = Dataset(5)
shard = [0, 2, 4] if rank == 0 else [1, 3, 0]
keys, pooled = superpoint_features_all_ranks(Model(), Loader(dataset, shard))
centroids = on_rank0(lambda: kmeans(torch.cat(pooled), 3, 20, seed=rank)[0])  # rank 1's own seed must not win
alone_keys, alone_pooled = superpoint_features(Model(), Loader(dataset, range(5)))
torch.save(dict(keys=keys, pooled=pooled, centroids=centroids, alone_keys=alone_keys, alone_pooled=alone_pooled,
                alone_centroids=kmeans(torch.cat(alone_pooled), 3, 20, seed=0)[0]), f"{sys.argv[1]}/rank{rank}.pt")
dist.barrier()
dist.destroy_process_group()  # gloo's threads left running at exit can abort the interpreter
'''


def test_clustering_hooks_pool_every_rank_and_take_rank0_kmeans(tmp_path):
    """What the clustering hooks do under 2 processes: the super-point features of both ranks' shards come back
    to every rank once each in the dataset's order (equal to one process pooling the whole set), and the k-means
    result every rank uses is rank 0's."""
    import torch

    from pc_kd.heads.clustering import kmeans

    script = tmp_path / "worker.py"
    script.write_text(_HOOK_WORKER)
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
          str(script), str(tmp_path)], _env(), timeout=120)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    for got in ranks:
        assert got["keys"] == got["alone_keys"] == [f"points/scene{i:02d}.bin" for i in range(5)]
        for a, b in zip(got["pooled"], got["alone_pooled"]):
            torch.testing.assert_close(a, b, atol=0, rtol=0)
        torch.testing.assert_close(got["centroids"], got["alone_centroids"], atol=0, rtol=0)
    torch.testing.assert_close(ranks[0]["centroids"], ranks[1]["centroids"], atol=0, rtol=0)
    own_seed = kmeans(torch.cat(ranks[1]["pooled"]), 3, 20, seed=1)[0]
    assert not torch.equal(ranks[1]["centroids"], own_seed)  # so the test sees whose k-means rank 1 kept


_SYNC_BN_WORKER = r'''
"""Run by torchrun with 2 processes: ProcessGroupBatchNorm on each rank's share of a batch against BatchNorm on the
whole batch in one process; then a model converted as a config's sync_bn='torch' converts it, trained one step."""
import sys

import torch
import torch.distributed as dist
from mmengine.model import convert_sync_batchnorm
from torch import nn

from pc_kd.engine import CpuDistributedDataParallel, ProcessGroupBatchNorm

dist.init_process_group("gloo")
rank = dist.get_rank()
out = {}
cases = [("1d_odd", nn.BatchNorm1d, (13, 6), 4), ("2d", nn.BatchNorm2d, (5, 4, 7, 3), 2),
         ("1d_rank1_empty", nn.BatchNorm1d, (9, 3), 9), ("3d_none_momentum", nn.BatchNorm3d, (3, 2, 4, 3, 5), 1)]
for name, cls, shape, split in cases:
    g = torch.Generator().manual_seed(len(name))
    x = torch.randn(shape, generator=g, dtype=torch.float64) * 3 + 1
    w = torch.randn(shape, generator=g, dtype=torch.float64)
    momentum = None if "none_momentum" in name else 0.1
    ours = ProcessGroupBatchNorm(shape[1], momentum=momentum).double()
    with torch.no_grad():
        ours.weight.copy_(torch.rand(shape[1], generator=g) + 0.5)
        ours.bias.copy_(torch.randn(shape[1], generator=g))
    part = slice(0, split) if rank == 0 else slice(split, shape[0])
    xp = x[part].clone().requires_grad_()
    for _ in range(2):  # twice: the running statistics of two steps
        y = ours(xp)
    (y * w[part]).sum().backward()
    grads = [p.grad.clone() for p in (ours.weight, ours.bias)]
    for t in grads:
        dist.all_reduce(t)
    out[name] = dict(x=x, w=w, y=y.detach(), x_grad=xp.grad, weight_grad=grads[0], bias_grad=grads[1],
                     state={k: v.clone() for k, v in ours.state_dict().items()}, part=(part.start, part.stop),
                     weight=ours.weight.detach().clone(), bias=ours.bias.detach().clone(), momentum=momentum)

model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(1), nn.Linear(16, 5),
                      nn.BatchNorm1d(5))
model = CpuDistributedDataParallel(module=convert_sync_batchnorm(model, "torch"))
kinds = [type(m).__name__ for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
model(torch.randn(3 + rank, 3, 4, 4)).square().sum().backward()
out["converted"] = dict(kinds=kinds, grad=model.module[0].weight.grad.clone())
torch.save(out, f"{sys.argv[1]}/rank{rank}.pt")
dist.barrier()
dist.destroy_process_group()  # gloo's threads left running at exit can abort the interpreter
'''


def test_sync_bn_on_cpu_processes_equals_batchnorm_on_the_whole_batch(tmp_path):
    """sync_bn='torch' under 2 CPU processes: the BatchNorm layers torch's SyncBatchNorm would replace (it refuses CPU
    tensors) become ProcessGroupBatchNorm, whose outputs, input and parameter gradients and running statistics
    after 2 steps equal plain BatchNorm's on the concatenated batch (odd splits, a rank with no samples, 1d/2d/3d,
    cumulative momentum)."""
    import torch
    from torch import nn

    script = tmp_path / "worker.py"
    script.write_text(_SYNC_BN_WORKER)
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
          str(script), str(tmp_path)], _env(), timeout=120)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    classes = {"1d_odd": nn.BatchNorm1d, "2d": nn.BatchNorm2d, "1d_rank1_empty": nn.BatchNorm1d,
               "3d_none_momentum": nn.BatchNorm3d}
    for name, cls in classes.items():
        got = [r[name] for r in ranks]
        x = got[0]["x"].clone().requires_grad_()
        plain = cls(x.shape[1], momentum=got[0]["momentum"]).double()
        with torch.no_grad():
            plain.weight.copy_(got[0]["weight"])
            plain.bias.copy_(got[0]["bias"])
        for _ in range(2):
            y = plain(x)
        (y * got[0]["w"]).sum().backward()
        for g in got:
            part = slice(*g["part"])
            torch.testing.assert_close(g["y"], y.detach()[part], atol=1e-12, rtol=1e-10, msg=f"{name} output")
            torch.testing.assert_close(g["x_grad"], x.grad[part], atol=1e-12, rtol=1e-10, msg=f"{name} dL/dx")
            torch.testing.assert_close(g["weight_grad"], plain.weight.grad, atol=1e-10, rtol=1e-10)
            torch.testing.assert_close(g["bias_grad"], plain.bias.grad, atol=1e-10, rtol=1e-10)
            for key, value in plain.state_dict().items():
                torch.testing.assert_close(g["state"][key], value, atol=1e-12, rtol=1e-10, msg=f"{name} {key}")
    for r in ranks:
        assert r["converted"]["kinds"] == ["ProcessGroupBatchNorm"] * 2
    # DDP averaged the first conv's gradient over both ranks: the same on each
    torch.testing.assert_close(ranks[0]["converted"]["grad"], ranks[1]["converted"]["grad"], atol=0, rtol=0)


_LOSS_NORM_WORKER = r'''
"""Run by torchrun with 2 processes: the BEV distillation losses on each rank's own boxes (rank 1 has more), and
the same losses in one process, for the normalisers averaged over ranks."""
import sys

import torch
import torch.distributed as dist

from pc_kd.models.losses.bev_distill import dense_feature_loss, response_loss, response_mask

GRID = dict(x_range=(-8.0, 8.0), y_range=(-4.0, 6.0), z_range=(-5.0, 3.0), cell=(0.5, 0.4))
g = torch.Generator().manual_seed(3)
boxes = [torch.tensor([[-3.0, 0.0, 0.0, 4.0, 2.0, 1.5, 0.3]]),
         torch.tensor([[2.0, 1.0, 0.0, 4.5, 2.0, 1.5, 1.0], [5.0, -2.0, 0.0, 0.6, 0.6, 1.7, 0.0],
                       [-6.0, 4.0, 0.0, 10.0, 2.5, 3.0, 2.0]])]
maps = [[{k: torch.randn(1, n, 25, 32, generator=g, dtype=torch.float64) for k, n in (("heatmap", 2), ("reg", 2))}]
        for _ in range(4)]
feats = [torch.randn(1, 3, 25, 32, generator=g, dtype=torch.float64) for _ in range(4)]
alone = dict(response=[response_loss(maps[2 * r], maps[2 * r + 1], boxes[r:r + 1], GRID) for r in (0, 1)],
             dense=[dense_feature_loss(feats[2 * r], feats[2 * r + 1], boxes[r:r + 1], GRID) for r in (0, 1)],
             mask_sums=[float(response_mask(boxes[r:r + 1], GRID, 0.7).sum()) for r in (0, 1)],
             dense_sums=[float(response_mask(boxes[r:r + 1], GRID, 0.1, min_radius=1).sum()) for r in (0, 1)])
dist.init_process_group("gloo")
r = dist.get_rank()
ranked = dict(response=response_loss(maps[2 * r], maps[2 * r + 1], boxes[r:r + 1], GRID),
              dense=dense_feature_loss(feats[2 * r], feats[2 * r + 1], boxes[r:r + 1], GRID))
torch.save(dict(alone=alone, ranked=ranked), f"{sys.argv[1]}/rank{r}.pt")
dist.barrier()
dist.destroy_process_group()  # gloo's threads left running at exit can abort the interpreter
'''


def test_response_and_dense_normalisers_are_averaged_over_ranks(tmp_path):
    """UniDistill's reduce_mean(mask.sum()): under 2 processes each rank divides its own masked sum by the mean of
    both ranks' mask sums (+ 1e-4), not by its own."""
    script = tmp_path / "worker.py"
    script.write_text(_LOSS_NORM_WORKER)
    _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
          str(script), str(tmp_path)], _env(), timeout=120)
    for r in (0, 1):
        got = torch.load(tmp_path / f"rank{r}.pt", weights_only=False)
        alone = got["alone"]
        for term, sums in (("response", alone["mask_sums"]), ("dense", alone["dense_sums"])):
            assert sums[0] != sums[1]  # so a rank's own normaliser and the mean differ
            scale = (sums[r] + 1e-4) / (sum(sums) / 2 + 1e-4)
            expected = alone[term][r]
            ranked = got["ranked"][term]
            for key in (("cls", "reg") if term == "response" else (None,)):
                e = expected[key] if key else expected
                v = ranked[key] if key else ranked
                assert abs(float(v) - float(e) * scale) < 1e-12, (term, key, float(v), float(e), scale)
