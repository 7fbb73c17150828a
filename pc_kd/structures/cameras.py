"""Posed pinhole cameras (a rig of V views) in the conventions of docs/conventions.md.

Frames:
    * "lidar" is the frame the points are in: the LiDAR frame for driving data, the scan (world) frame for
      indoor scans (ScanNet poses map camera -> that frame).
    * camera frame is OpenCV: x right, y down, z forward (metres).
    * image frame: pixel (u, v) has its centre at (u + 0.5, v + 0.5); u along the width, v along the height.

A matrix named ``A2B`` maps homogeneous points from A to B: ``p_B = A2B @ [x, y, z, 1]``.
``lidar2img = [[K, 0], [0, 1]] @ lidar2cam``.
"""
from dataclasses import dataclass, field
from typing import List, Sequence, Tuple

import numpy as np
import torch

from pc_kd.utils.checks import check_transform


def intrinsics_to_4x4(K, field_name: str = "cam2img") -> np.ndarray:
    """Pad a 3x3 (or pass a 4x4) intrinsic matrix to 4x4 ``[[K, 0], [0, 1]]``."""
    K = np.asarray(K, dtype=np.float64)
    if K.shape == (3, 3):
        out = np.eye(4)
        out[:3, :3] = K
        K = out
    return check_transform(K, field_name)


@dataclass
class CameraRig:
    """V posed cameras seeing one point cloud.

    Attributes:
        intrinsics: ``[V, 4, 4]`` float64, ``[[K, 0], [0, 1]]`` with K the 3x3 pinhole matrix (pixels).
        lidar2cam: ``[V, 4, 4]`` float64, point frame -> OpenCV camera frame of each view.
        image_hw: ``(H, W)`` of the images in pixels (all views share it).
        names: optional view names (e.g. ``CAM_FRONT``), ``len(names) == V``.
    """

    intrinsics: np.ndarray
    lidar2cam: np.ndarray
    image_hw: Tuple[int, int]
    names: List[str] = field(default_factory=list)

    def __post_init__(self):
        self.intrinsics = np.stack([intrinsics_to_4x4(k, f"intrinsics[{i}]")
                                    for i, k in enumerate(np.asarray(self.intrinsics, dtype=np.float64))]) \
            if len(self.intrinsics) else np.zeros((0, 4, 4))
        self.lidar2cam = np.stack([check_transform(m, f"lidar2cam[{i}]")
                                   for i, m in enumerate(np.asarray(self.lidar2cam, dtype=np.float64))]) \
            if len(self.lidar2cam) else np.zeros((0, 4, 4))
        if len(self.intrinsics) != len(self.lidar2cam):
            raise ValueError(f"CameraRig: {len(self.intrinsics)} intrinsics but {len(self.lidar2cam)} lidar2cam")
        if self.names and len(self.names) != len(self.lidar2cam):
            raise ValueError(f"CameraRig: {len(self.names)} names for {len(self.lidar2cam)} views")
        h, w = (int(v) for v in self.image_hw)
        if h <= 0 or w <= 0:
            raise ValueError(f"CameraRig: image_hw must be positive (H, W), got {self.image_hw}")
        self.image_hw = (h, w)

    @property
    def num_views(self) -> int:
        return len(self.lidar2cam)

    @property
    def lidar2img(self) -> np.ndarray:
        """``[V, 4, 4]`` point frame -> image: ``[u*z, v*z, z, 1]``."""
        return self.intrinsics @ self.lidar2cam

    @property
    def cam2lidar(self) -> np.ndarray:
        """``[V, 4, 4]`` camera pose in the point frame (camera -> point frame)."""
        return np.linalg.inv(self.lidar2cam)

    @classmethod
    def from_poses(cls, intrinsic, cam2world: Sequence[np.ndarray], image_hw, names=()) -> "CameraRig":
        """Rig from one intrinsic matrix (3x3 or 4x4) and per-view camera-to-world poses (ScanNet style)."""
        cam2world = np.stack([check_transform(p, f"cam2world[{i}]") for i, p in enumerate(cam2world)])
        K = intrinsics_to_4x4(intrinsic)
        return cls(np.repeat(K[None], len(cam2world), 0), np.linalg.inv(cam2world), image_hw, list(names))

    @classmethod
    def from_mmdet3d_images(cls, images: dict, image_hw, where: str = "images") -> "CameraRig":
        """Rig from an mmdet3d v1.x ``images`` dict ``{CAM_*: {cam2img, lidar2cam, ...}}`` (info files)."""
        names = list(images)
        Ks, l2c = [], []
        for name in names:
            cam = images[name]
            for key in ("cam2img", "lidar2cam"):
                if key not in cam:
                    raise KeyError(f"{where}[{name!r}] has no {key!r}; expected an mmdet3d v1.x info file")
            Ks.append(intrinsics_to_4x4(cam["cam2img"], f"{where}[{name!r}]['cam2img']"))
            l2c.append(check_transform(cam["lidar2cam"], f"{where}[{name!r}]['lidar2cam']"))
        return cls(np.stack(Ks), np.stack(l2c), image_hw, names)

    def project(self, points: np.ndarray):
        """Project ``points [N, 3]`` (point frame) into every view.

        Returns:
            uv: ``[V, N, 2]`` pixel coordinates (u, v); pixel (0, 0) covers [0, 1) x [0, 1).
            depth: ``[V, N]`` z in the camera frame (metres).
            inside: ``[V, N]`` bool, depth > 0 and 0 <= u < W and 0 <= v < H.
        """
        from pc_kd.projection import project_points

        proj = project_points(torch.as_tensor(points, dtype=torch.float64), torch.as_tensor(self.lidar2img),
                              self.image_hw)
        return proj.uv.numpy(), proj.depth.numpy(), proj.valid.numpy()
