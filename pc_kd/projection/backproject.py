"""Back-projection of multi-view 2D feature maps onto 3D points (OpenScene-style multi-view fusion, fused)."""
from typing import Optional, Tuple

import torch

from pc_kd.ops.backproject import BackprojectFunction, choose_impl

from .project import project_points
from .visibility import zbuffer_visibility

VISIBILITY = ("none", "zbuffer", "depth")
SAMPLING = ("bilinear", "nearest")
REDUCE = ("mean", "max", "sum")
# per-view geometry (projection temporaries, uv, mask) held at once: on the CPU a few views that stay in cache;
# on a GPU enough views per group that launches and per-group work do not dominate (~1 GiB: 60 views of 200k
# points)
GEOMETRY_BYTES = 16 << 20
GEOMETRY_BYTES_CUDA = 1 << 30


class ViewPlan:
    """Per-view geometry of one scene, produced a few views at a time (see ``groups``).

    For each view: ``uv [N, 2]`` float64 pixel coordinates (both implementations choose taps from them in
    float64, so they sample the same pixels) and ``visible [N]``: in front of the camera,
    inside the image by ``border`` pixels, and passing the visibility test.
    """

    def __init__(self, points, lidar2img, image_hw, border, visibility, depth_maps, depth_tol, depth_stride,
                 zbuffer_radius):
        self.points = points.double()
        self.lidar2img = lidar2img.double()
        self.image_hw = (int(image_hw[0]), int(image_hw[1]))
        self.border, self.visibility, self.depth_maps = border, visibility, depth_maps
        self.depth_tol, self.depth_stride, self.zbuffer_radius = depth_tol, depth_stride, zbuffer_radius
        self.num_points, self.num_views = points.shape[0], lidar2img.shape[0]
        budget = GEOMETRY_BYTES_CUDA if points.is_cuda else GEOMETRY_BYTES
        self.group_size = max(1, budget // max(1, 80 * self.num_points))  # ~80 B per (view, point)

    def view_geometry(self, views: slice):
        """``uv [Vg, N, 2]`` float64 and ``visible [Vg, N]`` bool of the views ``views``."""
        h, w = self.image_hw
        proj = project_points(self.points, self.lidar2img[views], self.image_hw)
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
        elif self.visibility == "zbuffer":
            visible &= zbuffer_visibility(self.points, self.lidar2img[views], self.image_hw,
                                          radius_px=self.zbuffer_radius, depth_tol=self.depth_tol)
        return proj.uv.double(), visible

    def groups(self):
        for start in range(0, self.num_views, self.group_size):
            views = slice(start, min(start + self.group_size, self.num_views))
            uv, visible = self.view_geometry(views)
            yield views, uv, visible


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
    args = dict(image_hw=image_hw, visibility=visibility, depth_tol=depth_tol, sampling=sampling, reduce=reduce,
                border=border, depth_stride=depth_stride, zbuffer_radius=zbuffer_radius, impl=impl)
    if offset is None:
        return _backproject_scene(points, feats, lidar2img, depth_maps, **args)
    if view_offset is None or len(view_offset) != len(offset):
        raise ValueError("backproject_features: a ragged batch needs offset and view_offset of the same length B")
    if int(offset[-1]) != points.shape[0] or int(view_offset[-1]) != feats.shape[0]:
        raise ValueError(f"backproject_features: offset must end at N={points.shape[0]} and view_offset at "
                         f"V={feats.shape[0]}, got {int(offset[-1])} and {int(view_offset[-1])}")
    outs, counts = [], []
    p0 = v0 = 0
    for p1, v1 in zip(offset.tolist(), view_offset.tolist()):
        dm = depth_maps[v0:v1] if depth_maps is not None else None
        out, count = _backproject_scene(points[p0:p1], feats[v0:v1], lidar2img[v0:v1], dm, **args)
        outs.append(out)
        counts.append(count)
        p0, v0 = p1, v1
    return torch.cat(outs), torch.cat(counts)


def _backproject_scene(points, feats, lidar2img, depth_maps, *, image_hw, visibility, depth_tol, sampling,
                       reduce, border, depth_stride, zbuffer_radius, impl):
    plan = ViewPlan(points, lidar2img, image_hw, border, visibility, depth_maps, depth_tol, depth_stride,
                    zbuffer_radius)
    return BackprojectFunction.apply(feats, plan, reduce, sampling == "bilinear", impl)
