"""Synthetic datasets: generated on first use (seeded, seconds, no download), then read by the very same
loaders as the real datasets."""
from mmengine.dist import barrier, get_rank

from pc_kd.registry import DATASETS

from ..indoor import ScanNetDataset
from ..nuscenes import NuScenesDataset
from .indoor import INDOOR_CLASSES
from .writer import write_driving_dataset, write_indoor_dataset


def _generate_once(fn, **kwargs):
    """Run the generator on rank 0 only; other ranks wait for it (distributed training)."""
    if get_rank() == 0:
        out = fn(**kwargs)
    barrier()
    if get_rank() != 0:
        out = fn(**kwargs)  # every scene exists now: this only rewrites the info file's content in memory
    return out


@DATASETS.register_module()
class SyntheticIndoorDataset(ScanNetDataset):
    """Synthetic rooms (floor, walls, ceiling, 7 furniture classes) in the ScanNet layout; see
    :func:`pc_kd.datasets.synthetic.write_indoor_dataset` for the files and the generator's arguments."""

    METAINFO = dict(classes=INDOOR_CLASSES, seg_raw_ids=tuple(range(len(INDOOR_CLASSES))))

    def __init__(self, data_root: str = "data/synthetic_indoor", split: str = "train", num_scenes: int = 4,
                 seed: int = 0, num_views: int = 3, image_hw=(240, 320), num_points: int = 20000, **kwargs):
        ann_file = _generate_once(write_indoor_dataset, root=data_root, split=split, num_scenes=num_scenes,
                                  seed=seed, num_views=num_views, image_hw=tuple(image_hw),
                                  num_points=num_points)
        super().__init__(ann_file=ann_file.name, data_root=str(data_root), **kwargs)


@DATASETS.register_module()
class SyntheticDrivingDataset(NuScenesDataset):
    """Synthetic driving key frames (LiDAR, 6 cameras, boxes of car / truck / pedestrian / traffic_cone /
    barrier) in the nuScenes layout; see :func:`pc_kd.datasets.synthetic.write_driving_dataset`."""

    def __init__(self, data_root: str = "data/synthetic_driving", split: str = "train", num_samples: int = 4,
                 seed: int = 0, image_hw=(225, 400), num_objects: int = 24, num_sweeps: int = 0, **kwargs):
        ann_file = _generate_once(write_driving_dataset, root=data_root, split=split, num_samples=num_samples,
                                  seed=seed, image_hw=tuple(image_hw), num_objects=num_objects,
                                  num_sweeps=num_sweeps)
        super().__init__(ann_file=ann_file.name, data_root=str(data_root), image_hw=tuple(image_hw), **kwargs)
