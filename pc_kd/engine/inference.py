"""Passes of a model over a data loader without gradients (clustering hooks, the demo, visualisation)."""
from typing import Iterator, List, Tuple

import torch

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


def predict_first_test_sample(runner) -> Tuple[dict, object]:
    """The collated batch of the runner's first test sample and the model's prediction for it (eval mode, no
    gradients): ``(batch, data_sample)`` — what the demos draw."""
    from .runner import bare_model

    model = bare_model(runner.model).eval()
    batch = runner.test_dataloader.collate_fn([runner.test_dataloader.dataset[0]])
    with torch.no_grad():
        return batch, model.test_step(batch)[0]
