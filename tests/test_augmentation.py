"""RandomRotScaleFlip: different draws per data-loader worker and per epoch, the same run twice when seeded."""
from functools import partial

import numpy as np
import torch
from mmengine.dataset import worker_init_fn
from torch.utils.data import DataLoader, Dataset

from pc_kd.datasets.transforms import RandomRotScaleFlip


class _Clouds(Dataset):
    """Eight copies of one cloud through a shared transform; returns (worker id, augmentation matrix)."""

    def __init__(self):
        self.transform = RandomRotScaleFlip()

    def __len__(self):
        return 8

    def __getitem__(self, i):
        out = self.transform({"points": np.ones((4, 3), np.float32)})
        return torch.utils.data.get_worker_info().id, torch.from_numpy(out["aug_matrix"])


def _epochs(seed, epochs=2):
    """What a seeded Runner does: global seeds, mmengine's worker_init_fn, non-persistent workers."""
    np.random.seed(seed)
    torch.manual_seed(seed)
    loader = DataLoader(_Clouds(), batch_size=None, num_workers=2, persistent_workers=False,
                        worker_init_fn=partial(worker_init_fn, num_workers=2, rank=0, seed=seed))
    return [[(w, m) for w, m in loader] for _ in range(epochs)]


def test_workers_and_epochs_draw_different_augmentations_and_a_seeded_run_repeats():
    first, again, other = _epochs(0), _epochs(0), _epochs(1)
    matrices = [m for epoch in first for _, m in epoch]
    assert len({tuple(m.flatten().tolist()) for m in matrices}) == len(matrices) == 16  # no draw repeats
    by_worker = {w: m for w, m in reversed(first[0])}  # the first matrix of each worker
    assert set(by_worker) == {0, 1} and not torch.equal(by_worker[0], by_worker[1])
    for (wa, ma), (wb, mb) in zip(sum(first, []), sum(again, [])):
        assert wa == wb and torch.equal(ma, mb)
    assert not torch.equal(first[0][0][1], other[0][0][1])


def test_main_process_draws_follow_numpy_global_seed():
    def run():
        np.random.seed(3)
        t = RandomRotScaleFlip()
        return [t({"points": np.ones((2, 3), np.float32)})["aug_matrix"] for _ in range(3)]

    a, b = run(), run()
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and not np.array_equal(a[0], a[1])
