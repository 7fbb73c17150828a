"""Passes of a model over a data loader without gradients (clustering hooks, the demo, visualisation)."""
from typing import Iterator, List, Tuple

import torch
from mmengine.dist import all_gather_object, broadcast_object_list, get_rank, get_world_size

from pc_kd.heads.clustering import segment_pool


def point_features(model, loader) -> Iterator[Tuple[torch.Tensor, object, torch.Tensor]]:
    """Run ``model`` (with ``point_features_list``) over ``loader`` in eval mode without gradients; yield
    ``(features [N, C], data sample, input cloud [N, 3 + F])`` per cloud, then restore the training mode."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in loader:
                data = model.data_preprocessor(batch, False)
                yield from zip(model.point_features_list(data["inputs"]), data["data_samples"],
                               batch["inputs"]["points"])
    finally:
        model.train(was_training)


def superpoint_features(model, loader) -> Tuple[List[str], List[torch.Tensor]]:
    """Per scene of ``loader``: its points file and the ``[S, C]`` mean student feature of each super-point."""
    keys, pooled = [], []
    for feats, sample, _ in point_features(model, loader):
        keys.append(sample.metainfo["lidar_path"])
        pooled.append(segment_pool(feats, sample.superpoints.to(feats.device))[0])
    return keys, pooled


def superpoint_features_all_ranks(model, loader) -> Tuple[List[str], List[torch.Tensor]]:
    """:func:`superpoint_features` of the whole dataset in every process: each rank pools the scenes its sampler
    gives it, the ranks exchange them, and the scenes come back once each (a padded sampler repeats some) in the
    dataset's order. One process: :func:`superpoint_features` as it is (the loader's order)."""
    keys, pooled = superpoint_features(model, loader)
    if get_world_size() == 1:
        return keys, pooled
    merged = {}
    for rank_keys, rank_pooled in all_gather_object((keys, [p.cpu() for p in pooled])):
        for key, feats in zip(rank_keys, rank_pooled):
            merged.setdefault(key, feats)
    order = [loader.dataset.get_data_info(i)["lidar_path"] for i in range(len(loader.dataset))]
    keys = [k for k in order if k in merged] + sorted(set(merged) - set(order))
    device = pooled[0].device if pooled else torch.device("cpu")
    return keys, [merged[k].to(device) for k in keys]


def on_rank0(fn):
    """``fn()`` computed by rank 0 and sent to every rank (one process: just ``fn()``), so that a randomised
    step such as k-means gives every rank the same result."""
    if get_world_size() == 1:
        return fn()
    result = [fn() if get_rank() == 0 else None]
    broadcast_object_list(result, src=0)
    return result[0]


def predict_first_test_sample(runner) -> Tuple[dict, object]:
    """The collated batch of the runner's first test sample and the model's prediction for it (eval mode, no
    gradients): ``(batch, data_sample)`` — what the demos draw."""
    from .runner import bare_model

    model = bare_model(runner.model).eval()
    batch = runner.test_dataloader.collate_fn([runner.test_dataloader.dataset[0]])
    with torch.no_grad():
        return batch, model.test_step(batch)[0]
