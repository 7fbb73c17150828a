"""Oriented 3D boxes ``[x, y, z, l, w, h, yaw]`` (+ ``vx, vy``) in a right-handed point frame.

Conventions (same as mmdet3d 1.x LiDAR boxes and the nuScenes info files):
    * (x, y, z) is the geometric centre; l along the box's heading axis, w across it, h along z.
    * yaw is counter-clockwise from +x about +z (radians); the heading axis is (cos yaw, sin yaw, 0).
    * velocity (vx, vy) in metres/second in the same frame.

Corner order of :meth:`Boxes3D.corners` (``[N, 8, 3]``): index ``i`` has local offset
``(sx * l/2, sy * w/2, sz * h/2)`` with ``sx = +1 if i in (0, 1, 2, 3) else -1`` (front face first),
``(sy, sz)`` cycling ``(+,+), (-,+), (-,-), (+,-)``. :meth:`Boxes3D.bev_corners` (``[N, 4, 2]``) goes
counter-clockwise seen from above: front-left, rear-left, rear-right, front-right.
"""
import numpy as np
import torch

_SIGNS = torch.tensor([[1, 1, 1], [1, -1, 1], [1, -1, -1], [1, 1, -1],
                       [-1, 1, 1], [-1, -1, 1], [-1, -1, -1], [-1, 1, -1]], dtype=torch.float64) / 2
_BEV_SIGNS = torch.tensor([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=torch.float64) / 2


class Boxes3D:
    """N boxes held as ``tensor [N, 7]`` or ``[N, 9]`` (with velocity)."""

    def __init__(self, tensor, with_velocity: bool = None):
        tensor = torch.as_tensor(np.asarray(tensor) if not torch.is_tensor(tensor) else tensor)
        if tensor.numel() == 0:
            tensor = tensor.reshape(0, 9 if with_velocity else 7)
        if not tensor.is_floating_point():
            tensor = tensor.double()
        if tensor.ndim != 2 or tensor.shape[1] not in (7, 9):
            raise ValueError(f"Boxes3D expects [N, 7] (x, y, z, l, w, h, yaw) or [N, 9] (+ vx, vy), got "
                             f"{tuple(tensor.shape)}")
        if not torch.isfinite(tensor[:, :7]).all():
            raise ValueError("Boxes3D: NaN or inf in centre, size or yaw")
        if (tensor[:, 3:6] < 0).any():
            raise ValueError("Boxes3D: negative box size (l, w, h)")
        self.tensor = tensor

    def __len__(self):
        return self.tensor.shape[0]

    def __getitem__(self, index) -> "Boxes3D":
        """Boxes selected by an int64 index, a bool mask or a slice (always a Boxes3D)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return Boxes3D(self.tensor[index], with_velocity=self.with_velocity)

    def __repr__(self):
        return f"Boxes3D(n={len(self)}, with_velocity={self.with_velocity})"

    @property
    def with_velocity(self) -> bool:
        return self.tensor.shape[1] == 9

    @property
    def center(self) -> torch.Tensor:
        return self.tensor[:, :3]

    @property
    def dims(self) -> torch.Tensor:
        """``[N, 3]`` (l, w, h)."""
        return self.tensor[:, 3:6]

    @property
    def yaw(self) -> torch.Tensor:
        return self.tensor[:, 6]

    @property
    def velocity(self) -> torch.Tensor:
        """``[N, 2]`` (vx, vy); zeros when the boxes carry none."""
        return self.tensor[:, 7:9] if self.with_velocity else self.tensor.new_zeros(len(self), 2)

    def _rotation(self) -> torch.Tensor:
        c, s = torch.cos(self.yaw), torch.sin(self.yaw)
        zero, one = torch.zeros_like(c), torch.ones_like(c)
        return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], -1).reshape(-1, 3, 3)

    def corners(self) -> torch.Tensor:
        """``[N, 8, 3]`` corners in the point frame (order in the module docstring)."""
        local = _SIGNS.to(self.tensor) * self.dims[:, None, :]
        return torch.einsum("nij,nkj->nki", self._rotation(), local) + self.center[:, None, :]

    def bev_corners(self) -> torch.Tensor:
        """``[N, 4, 2]`` xy corners seen from above, counter-clockwise from front-left."""
        local = _BEV_SIGNS.to(self.tensor) * self.dims[:, None, :2]
        return torch.einsum("nij,nkj->nki", self._rotation()[:, :2, :2], local) + self.center[:, None, :2]

    def transform(self, a2b) -> "Boxes3D":
        """Boxes in frame B given ``a2b [4, 4]`` whose rotation is (nearly) about z.

        Centres are mapped exactly; the heading vector is rotated and re-projected onto the xy plane (the
        small tilts between a LiDAR and the ego frame, ~1.4 degrees on nuScenes, are dropped as mmdet3d does);
        velocities are rotated in xy; sizes are kept. A rotation tilting z by more than ~6 degrees is refused.
        """
        a2b = torch.as_tensor(np.asarray(a2b) if not torch.is_tensor(a2b) else a2b).to(self.tensor)
        if a2b.shape != (4, 4):
            raise ValueError(f"Boxes3D.transform: expected a 4x4 matrix, got {tuple(a2b.shape)}")
        rot = a2b[:3, :3]
        if float(rot[2, :2].abs().max()) > 0.1:
            raise ValueError("Boxes3D.transform: the rotation tilts the z axis; yaw-only boxes cannot follow it")
        out = self.tensor.clone()
        out[:, :3] = self.center @ rot.T + a2b[:3, 3]
        heading = torch.stack([torch.cos(self.yaw), torch.sin(self.yaw), torch.zeros_like(self.yaw)], -1) @ rot.T
        out[:, 6] = torch.atan2(heading[:, 1], heading[:, 0])
        if self.with_velocity:
            out[:, 7:9] = self.velocity @ rot[:2, :2].T
        return Boxes3D(out)

    def similarity(self, mat) -> "Boxes3D":
        """Boxes under ``mat`` (4x4: a rotation about z times a uniform scale, optionally mirrored in x and/or y,
        plus a translation; e.g. a BEV augmentation): centres and velocities are mapped, sizes scaled, the heading
        vector mapped (a mirror reverses the sense of yaw)."""
        mat = np.asarray(mat, dtype=np.float64)
        t = self.tensor.clone()
        lin = torch.as_tensor(mat[:3, :3]).to(t)
        scale = float(np.cbrt(abs(np.linalg.det(mat[:3, :3]))))
        t[:, :3] = t[:, :3] @ lin.T + torch.as_tensor(mat[:3, 3]).to(t)
        t[:, 3:6] *= scale
        heading = torch.stack([torch.cos(t[:, 6]), torch.sin(t[:, 6])], -1) @ lin[:2, :2].T
        t[:, 6] = torch.atan2(heading[:, 1], heading[:, 0])
        if self.with_velocity:
            t[:, 7:9] = t[:, 7:9] @ lin[:2, :2].T
        return Boxes3D(t)

    def points_in_boxes(self, points) -> torch.Tensor:
        """``[N_points]`` int64 index of the box containing each point (first one), -1 for none."""
        points = torch.as_tensor(points).to(self.tensor)[:, :3]
        if len(self) == 0:
            return torch.full((len(points),), -1, dtype=torch.long)
        local = points[None] - self.center[:, None]
        local = torch.einsum("nji,nkj->nki", self._rotation(), local)  # R^T (p - c)
        inside = (local.abs() <= self.dims[:, None] / 2).all(-1)  # [B, P]
        idx = torch.where(inside.any(0), inside.float().argmax(0), torch.full_like(inside[0], -1, dtype=torch.long))
        return idx.long()

    def to(self, *args, **kwargs) -> "Boxes3D":
        """Boxes on another device / dtype (arguments as ``torch.Tensor.to``)."""
        return Boxes3D(self.tensor.to(*args, **kwargs))
