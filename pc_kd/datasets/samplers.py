"""A sampler whose indices name their draw, so random transforms can draw per sample and epoch."""
from mmengine.dataset import DefaultSampler

from pc_kd.registry import DATA_SAMPLERS


class SampleDraw(int):
    """A dataset index (an ``int``) that also carries the sampler's ``seed``, the ``epoch`` and ``key``, the index
    the sampler drew (kept when a wrapping dataset such as ``ConcatDataset`` subtracts an offset, so samples of
    different sub-datasets never share a draw). mmengine's datasets store the index as
    ``results['sample_idx']``, where :class:`RandomRotScaleFlip` reads it."""

    def __new__(cls, index: int, seed: int, epoch: int, key: int = None):
        draw = super().__new__(cls, index)
        draw.seed, draw.epoch, draw.key = int(seed), int(epoch), int(index if key is None else key)
        return draw

    def __sub__(self, other):
        return SampleDraw(int(self) - int(other), self.seed, self.epoch, self.key)

    def __add__(self, other):
        return SampleDraw(int(self) + int(other), self.seed, self.epoch, self.key)

    def __reduce__(self):  # to data-loader workers with its seed, epoch and key
        return SampleDraw, (int(self), self.seed, self.epoch, self.key)


@DATA_SAMPLERS.register_module()
class EpochSeededSampler(DefaultSampler):
    """mmengine's ``DefaultSampler`` (same order, same arguments) whose indices are :class:`SampleDraw`: the
    random transforms then draw from a generator seeded by (seed, epoch, sample index) instead of one running
    stream, so a sample's augmentation in an epoch does not depend on which worker loads it or on the workers'
    history, and a resumed run (fresh workers, ``persistent_workers`` included) draws what the uninterrupted run
    drew. Use it for epoch-based training with data-loader workers::

        train_dataloader = dict(num_workers=4, persistent_workers=True,
                                sampler=dict(type="EpochSeededSampler", shuffle=True))
    """

    def __iter__(self):
        epoch, seed = self.epoch, self.seed
        return (SampleDraw(index, seed, epoch) for index in super().__iter__())
