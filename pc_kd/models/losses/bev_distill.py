"""Distillation losses between two BEV detectors at the keypoints of the ground-truth boxes (UniDistill's three
terms): features at 9 keypoints per box, the 9 x 9 relations between them, and the head responses inside the
boxes' Gaussian peaks.

Frames and shapes: boxes are ``[N, >=7]`` (``x, y, z, l, w, h, yaw``, LiDAR frame of the BEV map, metres); BEV
maps are ``[B, C, H, W]`` on one :class:`~pc_kd.ops.bev_pool.BEVGrid` (rows along y, columns along x, cell
``(0, 0)`` at ``(x_min, y_min)``). The teacher's tensors are detached here: gradients reach the student only.
Every box-dependent loss divides by a count averaged over ranks (plus 1e-4), as UniDistill's ``reduce_mean``: the
keypoint terms by the boxes in the batch, the response and dense terms by the sum of their Gaussian mask. A batch
without boxes gives 0 with a gradient, never NaN; each loss computes in float32 whatever precision the maps come
in (autocast).

Deliberate differences from the anchors' code: UniDistill's ``grid_sample`` swaps x and y of the keypoints (its
issue #7) while its maps are ``[B, C, Y, X]``; pc_kd samples the true location. A box centre in
``[x_min - cell, x_min)`` (or the same along y) is drawn at cell 0 by UniDistill's, BEVDistill's and mmdet3d's
``int()`` truncation; pc_kd floors it and draws nothing there (a centre outside the grid is not in the grid;
mmdet3d's ``ObjectRangeFilter`` removes such boxes before either would see them).

The keypoint terms take the student's 1 x 1 conv adapter (student channels -> teacher channels) as an argument
and apply it to the samples instead of the map: a 1 x 1 conv is affine per cell and bilinear sampling is linear,
so ``sample(conv(f)) = W sample(f) + b sample(1)`` exactly (``sample(1)`` < 1 where taps fall outside the map),
and the adapter costs ``N x 9`` cells instead of the whole map (forward and backward). The dense term adapts
only the cells its Gaussians weigh, for the same reason.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce
from torch import nn

from pc_kd.heads.det.gaussian import gaussian_radius
from pc_kd.ops.bev_pool import BEVGrid
from pc_kd.structures import Boxes3D
from pc_kd.utils.precision import float32_loss

__all__ = ["box_keypoints", "sample_bev", "sample_adapted", "keypoint_feature_loss", "keypoint_relation_loss",
           "response_mask", "response_loss", "dense_feature_loss"]

# edges between the BEV corners whose midpoints are keypoints 5..8
_EDGES = ((0, 1), (1, 2), (2, 3), (3, 0))


def box_keypoints(boxes: torch.Tensor) -> torch.Tensor:
    """``[N, >=7]`` boxes -> ``[N, 9, 2]`` BEV keypoints (metres): the 4 corners in
    :meth:`Boxes3D.bev_corners` order (front-left, rear-left, rear-right, front-right), the centre, then the
    midpoints of the edges (0, 1), (1, 2), (2, 3), (3, 0)."""
    if boxes.ndim != 2 or boxes.shape[1] < 7:
        raise ValueError(f"box_keypoints: boxes must be [N, >=7] (x y z l w h yaw ...), got {tuple(boxes.shape)}")
    corners = Boxes3D(boxes[:, :7]).bev_corners()
    mids = torch.stack([(corners[:, i] + corners[:, j]) / 2 for i, j in _EDGES], 1)
    return torch.cat([corners, boxes[:, None, :2].to(corners), mids], 1)


def sample_bev(feat: torch.Tensor, xy: torch.Tensor, grid) -> torch.Tensor:
    """Bilinear samples of ``feat [B, C, H, W]`` at ``xy [B, M, K, 2]`` (metres) -> ``[B, M, K, C]``.

    A cell's value sits at its centre (``align_corners=False``); x runs along W, y along H; outside the map the
    map counts as 0 (``padding_mode='zeros'``)."""
    grid = BEVGrid.from_any(grid)
    if feat.ndim != 4 or tuple(feat.shape[-2:]) != grid.shape:
        raise ValueError(f"sample_bev: feat must be [B, C, H, W] with (H, W) = {grid.shape} of the grid, got "
                         f"{tuple(feat.shape)}")
    if xy.ndim != 4 or xy.shape[0] != feat.shape[0] or xy.shape[-1] != 2:
        raise ValueError(f"sample_bev: xy must be [B={feat.shape[0]}, M, K, 2], got {tuple(xy.shape)}")
    # x and y normalised to [-1, 1] by Python scalars (a tensor of the two would be a copy from host memory)
    uv = torch.stack([(xy[..., 0] - grid.x_range[0]) / (grid.x_range[1] - grid.x_range[0]),
                      (xy[..., 1] - grid.y_range[0]) / (grid.y_range[1] - grid.y_range[0])], -1) * 2 - 1
    out = F.grid_sample(feat, uv.to(feat.dtype), mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.permute(0, 2, 3, 1)  # [B, C, M, K] -> [B, M, K, C]


def sample_adapted(feat: torch.Tensor, xy: torch.Tensor, grid, adapter: Optional[nn.Module] = None
                   ) -> torch.Tensor:
    """``adapter(feat)`` sampled at ``xy`` (:func:`sample_bev`, ``[B, M, K, C_out]``) without convolving the map:
    the samples are adapted. ``adapter``: None / ``nn.Identity`` or an ``nn.Conv2d`` with a 1 x 1 kernel (no
    groups, stride 1, no padding)."""
    coverage = 1.0  # the taps' weight inside the map, [B, M, K, 1], where a bias needs it
    if isinstance(adapter, nn.Conv2d) and adapter.bias is not None:
        coverage = sample_bev(feat.new_ones(feat.shape[0], 1, *feat.shape[-2:]), xy, grid)
    return _adapt_rows("sample_adapted", sample_bev(feat, xy, grid), adapter, coverage)


def _adapt_rows(name: str, rows: torch.Tensor, adapter: Optional[nn.Module], coverage=1.0) -> torch.Tensor:
    """A 1 x 1 conv ``adapter`` applied to feature rows ``[..., C_in]`` -> ``[..., C_out]``: ``W x + coverage b``
    (``coverage`` is 1 at a cell, the taps' weight inside the map at a bilinear sample)."""
    if adapter is None or isinstance(adapter, nn.Identity):
        return rows
    if not (isinstance(adapter, nn.Conv2d) and adapter.kernel_size == (1, 1) and adapter.stride == (1, 1)
            and adapter.padding in ((0, 0), "valid") and adapter.groups == 1 and adapter.dilation == (1, 1)):
        raise ValueError(f"{name}: the adapter must be a plain 1 x 1 nn.Conv2d or nn.Identity, got {adapter}")
    out = rows @ adapter.weight[:, :, 0, 0].t().to(rows.dtype)
    if adapter.bias is not None:
        out = out + coverage * adapter.bias.to(rows.dtype)
    return out


def _rank_mean(value: torch.Tensor) -> torch.Tensor:
    """``value`` averaged over ranks (itself when not distributed), as UniDistill's ``reduce_mean``; the
    gradient, if any, stays this rank's."""
    mean = value.detach().clone()
    all_reduce(mean, op="mean")
    return mean


def _num_boxes(boxes: Sequence[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """Boxes in the batch, averaged over ranks (plain count when not distributed), in ``like``'s dtype."""
    return _rank_mean(torch.full((), float(sum(len(b) for b in boxes)), device=like.device, dtype=like.dtype))


def _box_rows(boxes: Sequence[torch.Tensor], device, dtype=None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every sample's boxes in one tensor: ``[N, 7]`` (``x, y, z, l, w, h, yaw``, on ``device``, in ``dtype`` or
    the boxes' own), and each row's sample and slot within its sample (``[N]`` long), made on ``device`` (a copy
    from host memory would wait for the GPU stream)."""
    rows = [torch.as_tensor(b)[:, :7] for b in boxes if len(b)]
    if not rows:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return torch.zeros(0, 7, device=device, dtype=dtype), empty, empty
    rows = torch.cat(rows).to(device=device, dtype=dtype)
    sample = torch.cat([torch.full((len(b),), i, dtype=torch.long, device=device) for i, b in enumerate(boxes)])
    slot = torch.cat([torch.arange(len(b), device=device) for b in boxes])
    return rows, sample, slot


def _keypoints_of_batch(boxes: Sequence[torch.Tensor], device, dtype) -> Tuple[torch.Tensor, torch.Tensor]:
    """Keypoints of every sample padded to the most boxes: ``[B, M, 9, 2]`` and ``valid [B, M]`` (all samples'
    boxes at once)."""
    m = max([len(b) for b in boxes] + [1])
    xy = torch.zeros(len(boxes), m, 9, 2, device=device, dtype=dtype)
    valid = torch.zeros(len(boxes), m, dtype=torch.bool, device=device)
    rows, sample, slot = _box_rows(boxes, device)
    if len(rows):
        xy[sample, slot] = box_keypoints(rows).to(dtype)
        valid[sample, slot] = True
    return xy, valid


def _check_pair(name: str, student: torch.Tensor, teacher: torch.Tensor, boxes: Sequence, adapter=None):
    adapted = tuple(student.shape)
    if isinstance(adapter, nn.Conv2d):
        if student.shape[1] != adapter.in_channels:
            raise ValueError(f"{name}: the adapter takes {adapter.in_channels} channels, the student map "
                             f"{tuple(student.shape)} has {student.shape[1]}")
        adapted = (student.shape[0], adapter.out_channels, *student.shape[2:])
    if adapted != tuple(teacher.shape):
        raise ValueError(f"{name}: student map {adapted} and teacher map {tuple(teacher.shape)} "
                         f"differ; both detectors must share the BEV grid and channels (add an adapter)")
    if len(boxes) != student.shape[0]:
        raise ValueError(f"{name}: {len(boxes)} box sets for a batch of {student.shape[0]}")


@float32_loss
def keypoint_feature_loss(student: torch.Tensor, teacher: torch.Tensor, boxes: Sequence[torch.Tensor], grid,
                          adapter: Optional[nn.Module] = None) -> torch.Tensor:
    """``sum over boxes of mean over (9 keypoints, C) |A(f_s) - f_t|``, / (N + 1e-4); maps ``[B, C, H, W]``
    (the student's ``C_s``, the teacher's ``C``), ``A`` the 1 x 1 ``adapter`` (:func:`sample_adapted`) or none."""
    _check_pair("keypoint_feature_loss", student, teacher, boxes, adapter)
    xy, valid = _keypoints_of_batch(boxes, student.device, student.dtype)
    diff = (sample_adapted(student, xy, grid, adapter) - sample_bev(teacher.detach(), xy, grid)).abs().mean((2, 3))
    return (diff * valid).sum() / (_num_boxes(boxes, student) + 1e-4)


def _relation(feat: torch.Tensor, eps: float) -> torch.Tensor:
    """``[..., 9, C]`` -> ``[..., 9, 9]`` cosine-like relations ``a a^T`` with ``a = x / (|x| + eps)``."""
    a = feat / (feat.norm(dim=-1, keepdim=True) + eps)
    return a @ a.transpose(-1, -2)


@float32_loss
def keypoint_relation_loss(student: torch.Tensor, teacher: torch.Tensor, boxes: Sequence[torch.Tensor], grid,
                           eps: float = 1e-4, adapter: Optional[nn.Module] = None) -> torch.Tensor:
    """``sum over boxes of mean |R_s - R_t|`` over the 9 x 9 keypoint relations, / (N + 1e-4); the student's
    keypoint features pass the 1 x 1 ``adapter`` first, as in :func:`keypoint_feature_loss`."""
    _check_pair("keypoint_relation_loss", student, teacher, boxes, adapter)
    xy, valid = _keypoints_of_batch(boxes, student.device, student.dtype)
    rs = _relation(sample_adapted(student, xy, grid, adapter), eps)
    rt = _relation(sample_bev(teacher.detach(), xy, grid), eps)
    return ((rs - rt).abs().mean((2, 3)) * valid).sum() / (_num_boxes(boxes, student) + 1e-4)


def response_mask(boxes: Sequence[torch.Tensor], grid, min_overlap: float = 0.7, device=None,
                  min_radius: int = 0) -> torch.Tensor:
    """``[B, H, W]`` float64: per sample the cell-wise max of every box's Gaussian, as :func:`draw_gaussian` splats
    it (:func:`gaussian_2d` of radius ``max(min_radius, int(gaussian_radius(l / dx, w / dy, min_overlap)))``, peak 1
    at the box's centre cell), for all boxes at once on one window of the largest radius: no loop over boxes or
    radii. ``min_radius`` 0 is UniDistill's response mask, 1 BEVDistill's foreground map."""
    grid = BEVGrid.from_any(grid)
    H, W = grid.shape
    mask = torch.zeros(len(boxes) * H * W, dtype=torch.float64, device=device)
    t, sample, _ = _box_rows(boxes, device, torch.float64)
    if not len(t):
        return mask.view(len(boxes), H, W)
    ix = torch.floor((t[:, 0] - grid.x_range[0]) / grid.cell[0]).long()
    iy = torch.floor((t[:, 1] - grid.y_range[0]) / grid.cell[1]).long()
    radius = gaussian_radius(t[:, 3] / grid.cell[0], t[:, 4] / grid.cell[1], min_overlap).long().clamp(min=min_radius)
    r_max = int(radius.max())  # the window every box's Gaussian fits in (the one value read back to the host)
    d = torch.arange(-r_max, r_max + 1, device=device)
    dy, dx = (v.reshape(1, -1) for v in torch.meshgrid(d, d, indexing="ij"))
    # gaussian_2d(r) of each box, computed as it computes it (sigma = (2r + 1) / 6, peak 1; its cut-off below
    # float32's epsilon never applies: the least value, at a corner, is exp(-36 r^2 / (2r + 1)^2) > exp(-9))
    sigma = (2 * radius + 1).double() / 6
    value = torch.exp(-(dx * dx + dy * dy).double() / (2 * sigma * sigma)[:, None])
    x, y = ix[:, None] + dx, iy[:, None] + dy
    # 0 beyond the box's radius and off the map; a 0 goes to the nearest cell of the map, where a max with 0
    # changes nothing: no tap is selected, so nothing is read back to the host
    r = radius[:, None]
    value = value * ((dx.abs() <= r) & (dy.abs() <= r) & (x >= 0) & (x < W) & (y >= 0) & (y < H))
    cell = (sample[:, None] * H + y.clamp(0, H - 1)) * W + x.clamp(0, W - 1)
    mask.scatter_reduce_(0, cell.reshape(-1), value.reshape(-1), reduce="amax")
    return mask.view(len(boxes), H, W)


@float32_loss
def response_loss(student: List[Dict[str, torch.Tensor]], teacher: List[Dict[str, torch.Tensor]],
                  boxes: Sequence[torch.Tensor], grid, min_overlap: float = 0.7, t_temp: float = 2.0,
                  clamp: float = 1e-4, reg_keys: Sequence[str] = ("reg", "height", "dim", "rot", "vel"),
                  s_temp: float = 1.0) -> Dict[str, torch.Tensor]:
    """Head responses inside the boxes' Gaussians, UniDistill's response term over the tasks of a
    :class:`CenterHead` output (one dict per task: ``heatmap`` logits ``[B, n_t, H, W]`` and the regression maps).

    Every task's classes are taken together, as UniDistill concatenates the tasks' heatmaps:
    ``h_s = max over all classes of all tasks of clamp(sigmoid(s / s_temp))``, ``h_t`` the same of
    ``clamp(sigmoid(t / t_temp))`` (clamped to ``[clamp, 1 - clamp]``); ``M`` = :func:`response_mask`;
    ``cls = sum M |h_s - h_t| / (sum M + 1e-4)`` and ``reg = sum M mean_ch |r_s - r_t| / (sum M + 1e-4)``, the
    mean over the channels of ``reg_keys`` of all tasks together (a task without them adds none); ``sum M`` is
    averaged over ranks. UniDistill softens the teacher only (``t_temp`` 2, ``s_temp`` 1); CrossKD compares both
    sides at one temperature (``s_temp = t_temp``). Returns ``dict(cls=..., reg=...)``."""
    if len(student) != len(teacher):
        raise ValueError(f"response_loss: the student head has {len(student)} tasks, the teacher's {len(teacher)}")
    ref = student[0]["heatmap"]
    mask = response_mask(boxes, grid, min_overlap, ref.device).to(ref.dtype)
    if tuple(mask.shape) != (ref.shape[0], *ref.shape[-2:]):
        raise ValueError(f"response_loss: heatmaps {tuple(ref.shape)} are not on the grid {tuple(mask.shape[1:])} "
                         f"with {len(boxes)} box sets")
    norm = _rank_mean(mask.sum()) + 1e-4
    keys = [[k for k in reg_keys if k in s_out] for s_out in student]
    for t, (s_out, t_out) in enumerate(zip(student, teacher)):
        for k in ["heatmap", *keys[t]]:
            if k not in t_out or s_out[k].shape != t_out[k].shape:
                raise ValueError(f"response_loss: task {t} map {k!r} differs between student "
                                 f"{tuple(s_out[k].shape)} and teacher "
                                 f"{tuple(t_out[k].shape) if k in t_out else 'missing'}")
    # the max over all tasks' classes, as a max of the tasks' maxima (no [B, sum n_t, H, W] copy)
    hs = torch.stack([torch.sigmoid(s_out["heatmap"] / s_temp).clamp(clamp, 1 - clamp).amax(1)
                      for s_out in student], 1).amax(1)
    ht = torch.stack([torch.sigmoid(t_out["heatmap"].detach() / t_temp).clamp(clamp, 1 - clamp).amax(1)
                      for t_out in teacher], 1).amax(1)
    cls = (mask * (hs - ht).abs()).sum() / norm
    channels = sum(student[t][k].shape[1] for t in range(len(student)) for k in keys[t])
    if not channels:
        return dict(cls=cls, reg=ref.new_zeros(()))
    # the mean over all tasks' regression channels, as a sum of each task's channel sums (a task at a time: all
    # tasks' maps in one tensor no longer fit a CPU's cache and made this term 3x slower)
    channel_sum = sum((torch.cat([student[t][k] for k in keys[t]], 1)
                       - torch.cat([teacher[t][k].detach() for k in keys[t]], 1)).abs().sum(1)
                      for t in range(len(student)) if keys[t])
    reg = (mask * channel_sum).sum() / (channels * norm)
    return dict(cls=cls, reg=reg)


@float32_loss
def dense_feature_loss(student: torch.Tensor, teacher: torch.Tensor, boxes: Sequence[torch.Tensor], grid,
                       min_overlap: float = 0.1, adapter: Optional[nn.Module] = None) -> torch.Tensor:
    """Dense foreground-weighted imitation of a BEV map (BEVDistill's dense term): every cell's squared error
    summed over channels, weighted by the boxes' Gaussians ``M`` (:func:`response_mask` with ``min_overlap`` and
    BEVDistill's radius ``max(1, int(r))``; 0.1, the heatmaps' overlap, covers about the box),
    ``sum M sum_C (A(f_s) - f_t)^2 / (sum M + 1e-4)`` with ``sum M`` averaged over ranks; maps ``[B, C, H, W]``
    (the student's ``C_s``, the teacher's ``C``), ``A`` the 1 x 1 ``adapter`` or none.

    Only the cells where ``M > 0`` are read and adapted (the others weigh 0), so the adapter costs the boxes'
    cells instead of the whole map, forward and backward."""
    _check_pair("dense_feature_loss", student, teacher, boxes, adapter)
    mask = response_mask(boxes, grid, min_overlap, student.device, min_radius=1).to(student.dtype)
    if tuple(mask.shape[1:]) != tuple(student.shape[-2:]):
        raise ValueError(f"dense_feature_loss: maps {tuple(student.shape)} are not on the grid "
                         f"{tuple(mask.shape[1:])}")
    b, y, x = torch.nonzero(mask > 0, as_tuple=True)
    rows_s = _adapt_rows("dense_feature_loss", student.permute(0, 2, 3, 1)[b, y, x], adapter)  # [K, C]
    rows_t = teacher.detach().permute(0, 2, 3, 1)[b, y, x]
    diff = (rows_s - rows_t).pow(2).sum(1)
    return (mask[b, y, x] * diff).sum() / (_rank_mean(mask.sum()) + 1e-4)
