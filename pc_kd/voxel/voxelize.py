"""Dynamic voxelization of ragged point batches (points -> unique voxels and the point->voxel map)."""
from typing import NamedTuple, Sequence, Union

import torch


class Voxels(NamedTuple):
    """Result of :func:`voxelize`.

    coords: ``[M, 4]`` int32 voxel indices ``(batch, z, y, x)`` (the spconv order), each cloud's grid starting
        at its own minimum corner ``origin[b]``.
    point2voxel: ``[N]`` int64 voxel row of each point.
    spatial_shape: ``[3]`` ints ``(Z, Y, X)`` covering every cloud of the batch.
    origin: ``[B, 3]`` xyz (metres) of voxel (0, 0, 0)'s minimum corner, per cloud.
    batch_size: B.
    """

    coords: torch.Tensor
    point2voxel: torch.Tensor
    spatial_shape: list
    origin: torch.Tensor
    batch_size: int


def voxelize(coord: torch.Tensor, batch_index: torch.Tensor, voxel_size: Union[float, Sequence[float]],
             batch_size: int = None) -> Voxels:
    """Assign points ``coord [N, 3]`` (metres) of clouds ``batch_index [N]`` to voxels of ``voxel_size``.

    Voxel (i, j, k) of cloud b covers ``origin[b] + [i, j, k] * voxel_size`` plus one voxel size along x, y, z.
    """
    if coord.ndim != 2 or coord.shape[1] != 3:
        raise ValueError(f"voxelize: coord must be [N, 3], got {tuple(coord.shape)}")
    if coord.shape[0] == 0:
        raise ValueError("voxelize: empty point cloud")
    size = torch.as_tensor(voxel_size, dtype=coord.dtype, device=coord.device).expand(3)
    if (size <= 0).any():
        raise ValueError(f"voxelize: voxel_size must be positive, got {voxel_size}")
    batch_size = int(batch_index.max()) + 1 if batch_size is None else batch_size
    origin = torch.full((batch_size, 3), float("inf"), dtype=coord.dtype, device=coord.device)
    origin.scatter_reduce_(0, batch_index[:, None].expand(-1, 3), coord, reduce="amin")
    grid = torch.floor((coord - origin[batch_index]) / size).long()
    shape_xyz = grid.max(0).values + 1
    key = ((batch_index * shape_xyz[2] + grid[:, 2]) * shape_xyz[1] + grid[:, 1]) * shape_xyz[0] + grid[:, 0]
    unique, point2voxel = torch.unique(key, return_inverse=True)
    x = unique % shape_xyz[0]
    y = (unique // shape_xyz[0]) % shape_xyz[1]
    z = (unique // (shape_xyz[0] * shape_xyz[1])) % shape_xyz[2]
    b = unique // (shape_xyz[0] * shape_xyz[1] * shape_xyz[2])
    coords = torch.stack([b, z, y, x], 1).int()
    spatial_shape = [int(shape_xyz[2]), int(shape_xyz[1]), int(shape_xyz[0])]
    return Voxels(coords, point2voxel, spatial_shape, origin, batch_size)


def voxel_mean(values: torch.Tensor, point2voxel: torch.Tensor, num_voxels: int) -> torch.Tensor:
    """``[M, C]`` mean of ``values [N, C]`` over the points of each voxel."""
    out = values.new_zeros(num_voxels, values.shape[1])
    out.index_add_(0, point2voxel, values)
    count = torch.bincount(point2voxel, minlength=num_voxels).clamp(min=1).to(values.dtype)
    return out / count[:, None]
