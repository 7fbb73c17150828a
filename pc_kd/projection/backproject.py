"""Back-projection of multi-view 2D feature maps onto 3D points (OpenScene-style multi-view fusion, fused)."""
from typing import Optional, Tuple

import numpy as np
import torch

from pc_kd.ops.backproject import BackprojectFunction, choose_impl
from pc_kd.ops.backproject.cpu_pairs import view_pairs_cpu
from pc_kd.ops.backproject.function import view_pairs_from_groups

from .project import project_points
from .visibility import zbuffer_visibility

VISIBILITY = ("none", "zbuffer", "depth")
SAMPLING = ("bilinear", "nearest")
REDUCE = ("mean", "max", "sum")
# per-view geometry (projection temporaries, uv, mask) held at once by the PyTorch projection, at ~80 B per
# (view, point) pair: on the CPU a chunk of one view's points, so that the temporaries stay a small part of the
# output; on a GPU enough views per group that launches and per-group work do not dominate (~1 GiB: 60 views of
# 200k points). The CPU twin's none and depth tests skip it: one numba pass per view makes the view's pairs.
GEOMETRY_BYTES = 4 << 20
GEOMETRY_BYTES_CUDA = 1 << 30
PAIR_BYTES = 80


class ViewPlan:
    """Per-view geometry of one scene, produced a few views at a time (see ``groups``).

    For each view: ``uv [N, 2]`` float64 pixel coordinates (both implementations choose taps from them in
    float64, so they sample the same pixels) and ``visible [N]``: in front of the camera,
    inside the image by ``border`` pixels, and passing the visibility test; produced for a group of views and a
    chunk of the points at a time (all points for the z-buffer test, which compares them). The CPU twin asks
    for ``view_pairs`` instead: for the ``none`` and ``depth`` tests one numba pass per view
    (:func:`view_pairs_cpu`, the same float64 arithmetic). In a ragged batch the scene's points are rows
    ``point0:point0 + N`` of the batch and its views ``view0:view0 + V``.
    """

    def __init__(self, points, lidar2img, image_hw, border, visibility, depth_maps, depth_tol, depth_stride,
                 zbuffer_radius, point0=0, view0=0):
        self.points = points.double()
        self.lidar2img = lidar2img.double()
        self.image_hw = (int(image_hw[0]), int(image_hw[1]))
        self.border, self.visibility, self.depth_maps = border, visibility, depth_maps
        self.depth_tol, self.depth_stride, self.zbuffer_radius = depth_tol, depth_stride, zbuffer_radius
        self.num_points, self.num_views = points.shape[0], lidar2img.shape[0]
        self.point0, self.view0 = point0, view0
        self.numba = not points.is_cuda and visibility != "zbuffer"
        pairs = (GEOMETRY_BYTES_CUDA if points.is_cuda else GEOMETRY_BYTES) // PAIR_BYTES
        self.chunk = max(1, self.num_points if visibility == "zbuffer" else min(self.num_points, pairs))
        self.group_size = max(1, pairs // self.chunk)

    def view_geometry(self, views: slice, points: slice = slice(None)):
        """``uv [Vg, n, 2]`` float64 and ``visible [Vg, n]`` bool of the views ``views`` and the scene's points
        ``points``."""
        h, w = self.image_hw
        proj = project_points(self.points[points], self.lidar2img[views], self.image_hw)
        b = self.border
        u, v = proj.uv[..., 0], proj.uv[..., 1]
        visible = proj.valid & (u >= b) & (u < w - b) & (v >= b) & (v < h - b)
        if self.visibility == "depth":
            s = self.depth_stride
            dm = self.depth_maps[views]
            iu = torch.floor(u / s).clamp(0, dm.shape[2] - 1).long()
            iv = torch.floor(v / s).clamp(0, dm.shape[1] - 1).long()
            d = torch.gather(dm.reshape(dm.shape[0], -1).double(), 1, iv * dm.shape[2] + iu)
            visible &= (d > 0) & ((d - proj.depth).abs() <= self.depth_tol * d)
        elif self.visibility == "zbuffer":  # all points at once (chunk = N)
            visible &= zbuffer_visibility(self.points, self.lidar2img[views], self.image_hw,
                                          radius_px=self.zbuffer_radius, depth_tol=self.depth_tol)
        return proj.uv.double(), visible

    def view_pairs(self, feat_hw, bilinear: bool, dtype):
        """The :class:`ViewPairs` of each view; on the CPU (``none`` and ``depth`` tests) from one numba pass
        per view (:func:`view_pairs_cpu`), else from :meth:`groups`."""
        if not self.numba:
            yield from view_pairs_from_groups(self, feat_hw, bilinear, dtype)
            return
        points = np.ascontiguousarray(self.points.detach().numpy())
        for view in range(self.num_views):
            depth = (np.ascontiguousarray(self.depth_maps[view].detach().double().numpy())
                     if self.visibility == "depth" else None)
            yield view_pairs_cpu(self.view0 + view, points, np.ascontiguousarray(self.lidar2img[view].detach().numpy()),
                                 self.image_hw, feat_hw, self.border, depth, self.depth_stride, self.depth_tol,
                                 bilinear, dtype, self.point0)

    def groups(self):
        """``(views, points, uv [Vg, n, 2], visible [Vg, n])``: ``views`` and ``points`` are slices of the batch."""
        for start in range(0, self.num_views, self.group_size):
            views = slice(start, min(start + self.group_size, self.num_views))
            for p0 in range(0, self.num_points, self.chunk):
                points = slice(p0, min(p0 + self.chunk, self.num_points))
                uv, visible = self.view_geometry(views, points)
                yield (slice(self.view0 + views.start, self.view0 + views.stop),
                       slice(self.point0 + points.start, self.point0 + points.stop), uv, visible)


class BatchPlan:
    """The :class:`ViewPlan` of each scene of a ragged batch as one plan: the op accumulates every scene into
    its rows of one output, so a batch costs no more memory than its output."""

    def __init__(self, plans, image_hw):
        self.plans, self.image_hw = plans, (int(image_hw[0]), int(image_hw[1]))
        self.num_points = sum(plan.num_points for plan in plans)

    def groups(self):
        for plan in self.plans:
            yield from plan.groups()

    def view_pairs(self, feat_hw, bilinear: bool, dtype):
        for plan in self.plans:
            yield from plan.view_pairs(feat_hw, bilinear, dtype)


def _check(points, feats, lidar2img, image_hw, visibility, depth_maps, depth_stride, sampling, reduce, border):
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"backproject_features: points must be [N, 3], got {tuple(points.shape)}")
    if feats.ndim != 4:
        raise ValueError(f"backproject_features: feats must be [V, C, h, w], got {tuple(feats.shape)}")
    if not feats.is_floating_point():
        raise ValueError(f"backproject_features: feats must be floating point, got {feats.dtype}")
    if feats.shape[2] == 0 or feats.shape[3] == 0:
        raise ValueError(f"backproject_features: feature maps have zero size {tuple(feats.shape[2:])}")
    if lidar2img.ndim != 3 or lidar2img.shape[1:] != (4, 4) or lidar2img.shape[0] != feats.shape[0]:
        raise ValueError(f"backproject_features: lidar2img must be [V, 4, 4] with V = {feats.shape[0]} (feats), "
                         f"got {tuple(lidar2img.shape)}")
    if not torch.isfinite(lidar2img).all():
        raise ValueError("backproject_features: lidar2img has NaN or inf entries")
    if not torch.isfinite(points).all():
        raise ValueError("backproject_features: points have NaN or inf coordinates")
    if len(image_hw) != 2 or min(image_hw) <= 0:
        raise ValueError(f"backproject_features: image_hw must be positive (H, W), got {image_hw}")
    for name, value, options in (("visibility", visibility, VISIBILITY), ("sampling", sampling, SAMPLING),
                                 ("reduce", reduce, REDUCE)):
        if value not in options:
            raise ValueError(f"backproject_features: {name} must be one of {options}, got {value!r}")
    if border < 0:
        raise ValueError(f"backproject_features: border must be >= 0 pixels, got {border}")
    if visibility == "depth":
        if depth_maps is None:
            raise ValueError("backproject_features: visibility='depth' needs depth_maps [V, H', W'] (metres)")
        expected = (feats.shape[0], image_hw[0] // depth_stride, image_hw[1] // depth_stride)
        if tuple(depth_maps.shape) != expected:
            raise ValueError(f"backproject_features: depth_maps must be [V, H // depth_stride, W // depth_stride] "
                             f"= {list(expected)} for image_hw {tuple(image_hw)} and depth_stride {depth_stride}, "
                             f"got {list(depth_maps.shape)}; pass depth_stride for reduced-size depth maps")


def backproject_features(points: torch.Tensor, feats: torch.Tensor, lidar2img: torch.Tensor,
                         image_hw: Tuple[int, int], *, visibility: str = "none",
                         depth_maps: Optional[torch.Tensor] = None, depth_tol: float = 0.25,
                         sampling: str = "bilinear", reduce: str = "mean", border: int = 0,
                         offset: Optional[torch.Tensor] = None, view_offset: Optional[torch.Tensor] = None,
                         depth_stride: int = 1, zbuffer_radius: int = 2, impl: str = "auto"):
    """Sample every view's feature map at the points it sees and reduce over the views.

    Args:
        points: ``[N, 3]`` xyz (metres) in the frame ``lidar2img`` maps from.
        feats: ``[V, C, h, w]`` feature maps; any stride of the image (h, w need not equal H, W): cell (i, j)
            covers image pixels ``[j W / w, (j + 1) W / w) x [i H / h, (i + 1) H / h)``.
        lidar2img: ``[V, 4, 4]`` point frame -> image pixels (``intrinsics @ lidar2cam``).
        image_hw: ``(H, W)`` of the images the intrinsics refer to.
        visibility: ``none`` (in front and inside the image), ``depth`` (``|d - z| <= depth_tol * d`` with d
            the depth map at the point's pixel, 0 = no depth; OpenScene's test), ``zbuffer`` (no other point in
            front within ``zbuffer_radius`` pixels, relative tolerance ``depth_tol``; for scans without depth).
        depth_maps: ``[V, H // depth_stride, W // depth_stride]`` metres, for ``visibility='depth'``.
        sampling: ``bilinear`` (cell centres, border replicated) or ``nearest`` (the cell holding the point).
        reduce: ``mean`` | ``max`` | ``sum`` over the views that see a point (for ``max`` the gradient of a
            point's channel goes to the first view, by index, whose sample attains it).
        border: ignore projections closer than this many pixels to the image edge.
        offset, view_offset: ``[B]`` cumulative counts of points and of views per scene, for a ragged batch of
            B scenes (points of scene b are seen only by views of scene b).
        impl: ``auto`` (Triton kernel on CUDA, else the PyTorch twin), ``torch`` or ``triton``.

    Returns:
        ``point_feats [N, C]`` (dtype of feats; zeros for points no view sees) and ``view_count [N]`` int64.
        Differentiable with respect to ``feats``. No ``[V, N, C]`` tensor is formed; on the PyTorch path
        ``point_feats`` is the transpose of a ``[C, N]`` buffer (call ``.contiguous()`` if you need rows).
    """
    _check(points, feats, lidar2img, image_hw, visibility, depth_maps, depth_stride, sampling, reduce, border)
    impl = choose_impl(feats, impl)
    if offset is None:
        offset, view_offset = [points.shape[0]], [feats.shape[0]]
    elif view_offset is None or len(view_offset) != len(offset):
        raise ValueError("backproject_features: a ragged batch needs offset and view_offset of the same length B")
    elif int(offset[-1]) != points.shape[0] or int(view_offset[-1]) != feats.shape[0]:
        raise ValueError(f"backproject_features: offset must end at N={points.shape[0]} and view_offset at "
                         f"V={feats.shape[0]}, got {int(offset[-1])} and {int(view_offset[-1])}")
    offset, view_offset = torch.as_tensor(offset).tolist(), torch.as_tensor(view_offset).tolist()
    if any(b < a for a, b in zip([0] + offset, offset)) or any(b < a for a, b in zip([0] + view_offset, view_offset)):
        raise ValueError(f"backproject_features: offset and view_offset must be cumulative counts (non-decreasing), "
                         f"got {offset} and {view_offset}")
    plans, p0, v0 = [], 0, 0
    for p1, v1 in zip(offset, view_offset):
        plans.append(ViewPlan(points[p0:p1], lidar2img[v0:v1], image_hw, border, visibility,
                              depth_maps[v0:v1] if depth_maps is not None else None, depth_tol, depth_stride,
                              zbuffer_radius, point0=p0, view0=v0))
        p0, v0 = p1, v1
    return BackprojectFunction.apply(feats, BatchPlan(plans, image_hw), reduce, sampling == "bilinear", impl)
