"""Collate ragged point clouds and voxelize them for sparse-conv models."""
from typing import Sequence

import torch
from mmengine.model import BaseDataPreprocessor

from pc_kd.registry import MODELS
from pc_kd.structures import PointBatch
from pc_kd.voxel import voxel_reduce, voxelize


@MODELS.register_module()
class PointDataPreprocessor(BaseDataPreprocessor):
    """Turn ``inputs['points']`` (a list of ``[N_b, 3 + C]`` tensors) into a voxelized ragged batch.

    Output ``inputs``: ``points`` (:class:`PointBatch`, ``feat`` = columns 3..), ``voxels``
    (:class:`pc_kd.voxel.Voxels`) and ``voxel_feats [M, C + 3]``: the mean input feature of each voxel
    followed by the mean offset of its points from the voxel centre, in voxel units.

    Args:
        voxel_size: edge length(s) in metres.
    """

    def __init__(self, voxel_size: Sequence[float] = (0.05, 0.05, 0.05), non_blocking: bool = False):
        super().__init__(non_blocking)
        self.voxel_size = voxel_size

    def forward(self, data: dict, training: bool = False) -> dict:
        data = self.cast_data(data)
        clouds = data["inputs"]["points"]
        for i, cloud in enumerate(clouds):
            if cloud.ndim != 2 or cloud.shape[1] < 3 or cloud.shape[0] == 0:
                raise ValueError(f"PointDataPreprocessor: sample {i} has points of shape {tuple(cloud.shape)}; "
                                 f"expected a non-empty [N, 3 + C]")
        batch = PointBatch.from_list([c[:, :3] for c in clouds], [c[:, 3:] for c in clouds])
        voxels = voxelize(batch.coord, self.voxel_size, batch_index=batch.batch_index, batch_size=batch.batch_size)
        size = torch.as_tensor(self.voxel_size, dtype=batch.coord.dtype, device=batch.coord.device)
        rel = (batch.coord - voxels.origin[batch.batch_index]) / size
        offset = rel - torch.floor(rel) - 0.5
        feats = voxel_reduce(torch.cat([batch.feat, offset], 1), voxels, "mean")
        inputs = dict(points=batch, voxels=voxels, voxel_feats=feats)
        return dict(inputs=inputs, data_samples=data.get("data_samples"))
