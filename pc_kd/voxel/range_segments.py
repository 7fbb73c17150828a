"""LiDAR segment proposals on the range image, without labels (depth_clustering's algorithm, Bogoslavskyi and
Stachniss 2016): a range image from each point's ring (beam) and azimuth, ground removal by the slope along each
column, then segments grown between neighbouring pixels whose angle ``beta`` is large.

Range image: rows are beams ordered from the highest elevation (row 0) down to the lowest, columns are azimuth
steps ``atan2(y, x)`` in ``[0, 2 pi)`` (columns wrap around); a pixel holds the range (3D distance to the sensor,
metres) of its nearest point, 0 where no point fell.

- ``slope``: per pixel of row r >= 1, ``atan2(|dz|, |dxy|)`` between the returns of rows r and r - 1 in the
  column's vertical plane (row 0: 0); smoothed along the column by a Savitzky-Golay filter (quadratic, window 9,
  mirrored borders).
- ground: from each column's lowest return whose smoothed slope is below 30 deg, a breadth-first search through
  the 4-neighbourhood (columns wrap) while neighbouring smoothed slopes differ by less than 7 deg; the ground mask
  is then dilated by ``dilate_rows`` rows up and down. (depth_clustering dilates with a 7 x 1 8-bit kernel whose
  two elements it writes through 32-bit float accessors, so its structuring element is whatever those bytes make:
  on a little-endian machine rows -1 and 0, one row towards the lower beams, the last write beyond the matrix.
  pc_kd states its dilation instead: symmetric, ``dilate_rows`` rows, 1 by default.)
- segments: two neighbouring non-ground pixels with ranges ``d1 >= d2`` seen ``alpha`` apart (the beams' elevation
  difference or the azimuth step) join when ``beta = atan2(d2 sin(alpha), d1 - d2 cos(alpha)) > 10 deg`` (a
  surface facing the sensor gives about 90 deg, one it grazes a few degrees, a depth jump between two objects
  about 0); segments of 20 to 100000 points are kept.

Every point takes the segment of its pixel. All arrays are numpy; the kernels are numba loops.
"""
from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["RangeImage", "LidarSegments", "range_image", "beam_elevations", "beta_angle", "slope_image",
           "savitzky_golay_rows", "repair_depth", "ground_mask", "label_segments", "lidar_segments"]


@dataclass
class RangeImage:
    """``depth [R, C]`` float64 range in metres (0: no return); ``row [N]`` / ``col [N]`` int64 the pixel of each
    point; ``row_angles [R]`` float64 elevation of each row in radians (decreasing: row 0 is the highest beam);
    ``col_step`` the azimuth step in radians."""
    depth: np.ndarray
    row: np.ndarray
    col: np.ndarray
    row_angles: np.ndarray
    col_step: float


@dataclass
class LidarSegments:
    """``segment [N]`` int64 the proposal of each point (0 .. num_segments - 1; -1: ground, or a segment outside the
    size limits); ``ground [N]`` bool; ``image`` the range image they were computed on."""
    segment: np.ndarray
    ground: np.ndarray
    num_segments: int
    image: RangeImage


def _check_points(points, rings, num_rings):
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points: expected [N, >=3] x y z in metres, got shape {points.shape}")
    rings = np.asarray(rings)
    if rings.shape != (points.shape[0],):
        raise ValueError(f"rings: expected [N] = [{points.shape[0]}] one beam index per point, got shape {rings.shape}")
    if not np.all(np.isfinite(rings)) or not np.all(rings == np.round(rings)):
        raise ValueError("rings: expected integer beam indices (nuScenes: the 5th column of LIDAR_TOP files)")
    rings = rings.astype(np.int64)
    if len(rings) and (rings.min() < 0 or rings.max() >= num_rings):
        raise ValueError(f"rings: expected values in [0, {num_rings}), got {rings.min()} .. {rings.max()}; "
                         f"pass num_rings= the sensor's beam count")
    return np.asarray(points[:, :3], np.float64), rings


def beam_elevations(points, rings, num_rings: int) -> np.ndarray:
    """The elevation (radians) of each beam ``[num_rings]``: the median ``atan2(z, hypot(x, y))`` of its points;
    a beam without points is interpolated linearly by index from the beams that have some (extrapolated beyond
    them from the two nearest)."""
    xyz, rings = _check_points(points, rings, num_rings)
    elevation = np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1]))
    out = np.full(num_rings, np.nan)
    for r in np.unique(rings):
        out[r] = np.median(elevation[rings == r])
    known = np.flatnonzero(np.isfinite(out))
    if len(known) == 0:
        raise ValueError("beam_elevations: no points, so no beam's elevation; pass row_angles= explicitly")
    index = np.arange(num_rings)
    filled = np.interp(index, known, out[known])
    if len(known) >= 2:
        low_slope = (out[known[1]] - out[known[0]]) / (known[1] - known[0])
        high_slope = (out[known[-1]] - out[known[-2]]) / (known[-1] - known[-2])
        filled = np.where(index < known[0], out[known[0]] + (index - known[0]) * low_slope, filled)
        filled = np.where(index > known[-1], out[known[-1]] + (index - known[-1]) * high_slope, filled)
    return filled


def range_image(points, rings, num_rings: int, cols: int, elevations=None) -> RangeImage:
    """The range image of one sweep.

    ``points [N, >=3]`` x y z (metres) in the sensor frame; ``rings [N]`` each point's beam (0 .. num_rings - 1);
    ``cols`` azimuth steps per turn (nuScenes' 32-beam LiDAR: about 1090 returns per beam and sweep);
    ``elevations [num_rings]`` each beam's elevation (radians; default: measured, ``beam_elevations``).
    """
    xyz, rings = _check_points(points, rings, num_rings)
    if cols < 2:
        raise ValueError(f"cols: expected >= 2 azimuth steps, got {cols}")
    if elevations is None:
        elevations = beam_elevations(xyz, rings, num_rings) if len(xyz) else np.zeros(num_rings)
    elevations = np.asarray(elevations, np.float64)
    if elevations.shape != (num_rings,):
        raise ValueError(f"elevations: expected [{num_rings}] radians, got shape {elevations.shape}")
    order = np.argsort(-elevations, kind="stable")  # row -> ring, highest first
    row_of_ring = np.empty(num_rings, np.int64)
    row_of_ring[order] = np.arange(num_rings)
    col_step = 2 * np.pi / cols
    azimuth = np.mod(np.arctan2(xyz[:, 1], xyz[:, 0]), 2 * np.pi)
    col = np.minimum((azimuth / col_step).astype(np.int64), cols - 1)
    row = row_of_ring[rings]
    rng = np.linalg.norm(xyz, axis=1)
    depth = np.full(num_rings * cols, np.inf)
    np.minimum.at(depth, row * cols + col, rng)
    depth[~np.isfinite(depth)] = 0.0
    return RangeImage(depth.reshape(num_rings, cols), row, col, elevations[order], col_step)


def beta_angle(d_a, d_b, alpha):
    """``beta = atan2(d2 sin(alpha), d1 - d2 cos(alpha))`` (radians) with ``d1 = max(d_a, d_b)``,
    ``d2 = min(d_a, d_b)``: the angle at the farther return between the line joining the two returns and that
    return's ray. Arrays broadcast."""
    d1, d2 = np.maximum(d_a, d_b), np.minimum(d_a, d_b)
    return np.arctan2(d2 * np.sin(alpha), d1 - d2 * np.cos(alpha))


@numba.njit(cache=True)
def _repair_depth(depth, step, tolerance):
    out = depth.copy()
    rows, cols = depth.shape
    for c in range(cols):
        for r in range(rows):
            if out[r, c] >= 0.001:
                continue
            total = 0.0
            count = 0
            for i in range(1, step):
                if r - i < 0:
                    continue
                for j in range(1, step):
                    if r + j > rows - 1:
                        continue
                    prev = out[r - i, c]
                    nxt = out[r + j, c]
                    if prev > 0.001 and nxt > 0.001 and abs(prev - nxt) < tolerance:
                        total += prev + nxt
                        count += 2
            if count > 0:
                out[r, c] = total / count
    return out


def repair_depth(depth, step: int = 5, tolerance: float = 1.0) -> np.ndarray:
    """Fill a missing pixel (range < 1 mm) of ``depth [R, C]`` with the mean of the pairs above and below it in
    its column (up to ``step - 1`` rows away each) whose ranges differ by less than ``tolerance`` metres. Columns
    are visited top to bottom and a filled pixel counts for the pixels below it (as depth_clustering)."""
    return _repair_depth(np.ascontiguousarray(depth, np.float64), int(step), float(tolerance))


def slope_image(depth, row_angles) -> np.ndarray:
    """``[R, C]`` radians: the slope ``atan2(|dz|, |dxy|)`` between the returns of row r and row r - 1 of each
    column, in the column's vertical plane (x = d cos(elevation), z = d sin(elevation)); row 0 is 0."""
    depth = np.asarray(depth, np.float64)
    angles = np.asarray(row_angles, np.float64)[:, None]
    x, z = depth * np.cos(angles), depth * np.sin(angles)
    out = np.zeros_like(depth)
    out[1:] = np.arctan2(np.abs(z[1:] - z[:-1]), np.abs(x[1:] - x[:-1]))
    return out


def savitzky_golay_rows(image, window: int = 9, order: int = 2) -> np.ndarray:
    """Savitzky-Golay smoothing of ``image [R, C]`` along its rows' axis (down each column): the value of the
    degree-``order`` polynomial fitted by least squares to the ``window`` pixels centred on each pixel, the
    borders mirrored without repeating the edge pixel."""
    if window % 2 == 0 or window <= order:
        raise ValueError(f"window: expected an odd length > order ({order}), got {window}")
    image = np.asarray(image, np.float64)
    half = window // 2
    offsets = np.arange(-half, half + 1, dtype=np.float64)
    coeffs = np.linalg.pinv(np.vander(offsets, order + 1, increasing=True))[0]  # the fit's value at offset 0
    if image.shape[0] < 2:
        return image.copy()
    padded = np.pad(image, ((half, half), (0, 0)), mode="reflect")
    out = np.zeros_like(image)
    for k, w in enumerate(coeffs):
        out += w * padded[k:k + image.shape[0]]
    return out


@numba.njit(cache=True)
def _flood(label, value, start, depth, use_beta, smoothed, row_alpha, col_alpha, threshold, queue):
    """Breadth-first search from pixel ``start`` (flat index) through the 4-neighbourhood (columns wrap), giving
    unlabelled pixels (``label < 0``) ``value``. A pixel without a return is labelled but grows no further. A
    neighbour joins when ``use_beta``: it has a return and the pair's beta exceeds ``threshold``; else: the
    pair's ``smoothed`` values differ by less than ``threshold``."""
    rows, cols = depth.shape
    head = 0
    tail = 1
    queue[0] = start
    while head < tail:
        u = queue[head]
        head += 1
        ur = u // cols
        uc = u % cols
        if label[ur, uc] >= 0:
            continue
        label[ur, uc] = value
        if depth[ur, uc] < 0.001:
            continue
        for k in range(4):
            vr = ur + (-1 if k == 0 else 1 if k == 1 else 0)
            if vr < 0 or vr >= rows:
                continue
            vc = (uc + (-1 if k == 2 else 1 if k == 3 else 0)) % cols
            if label[vr, vc] >= 0:
                continue
            if use_beta:
                if depth[vr, vc] < 0.001:
                    continue
                alpha = col_alpha if k >= 2 else row_alpha[min(ur, vr)]
                d1 = max(depth[ur, uc], depth[vr, vc])
                d2 = min(depth[ur, uc], depth[vr, vc])
                join = np.arctan2(d2 * np.sin(alpha), d1 - d2 * np.cos(alpha)) > threshold
            else:
                join = abs(smoothed[ur, uc] - smoothed[vr, vc]) < threshold
            if join:
                queue[tail] = vr * cols + vc
                tail += 1


@numba.njit(cache=True)
def _grow_ground(depth, smoothed, start, grow):
    rows, cols = depth.shape
    label = np.full((rows, cols), -1, np.int64)
    queue = np.empty(rows * cols * 4 + 1, np.int64)
    no_alpha = np.zeros(1)
    for c in range(cols):
        r = rows - 1
        while r > 0 and depth[r, c] < 0.001:
            r -= 1
        if label[r, c] >= 0 or smoothed[r, c] > start:
            continue
        _flood(label, 0, r * cols + c, depth, False, smoothed, no_alpha, 0.0, grow, queue)
    return label >= 0


def ground_mask(depth, row_angles, window: int = 9, start_angle_deg: float = 30.0, grow_angle_deg: float = 7.0,
                dilate_rows: int = 1, repair: bool = True) -> np.ndarray:
    """``[R, C]`` bool: the ground pixels of a range image ``depth [R, C]`` (rows ordered as ``row_angles [R]``,
    highest first). See the module docstring; ``repair`` fills small gaps first (``repair_depth``)."""
    depth = np.ascontiguousarray(depth, np.float64)
    if depth.ndim != 2 or depth.shape[0] != len(row_angles):
        raise ValueError(f"depth: expected [R, C] with R = len(row_angles) = {len(row_angles)}, got {depth.shape}")
    if depth.size == 0:
        return np.zeros(depth.shape, bool)
    if repair:
        depth = repair_depth(depth)
    smoothed = savitzky_golay_rows(slope_image(depth, row_angles), window)
    ground = _grow_ground(depth, np.ascontiguousarray(smoothed), np.radians(start_angle_deg),
                          np.radians(grow_angle_deg))
    grown = ground.copy()
    for k in range(1, dilate_rows + 1):
        grown[k:] |= ground[:-k]
        grown[:-k] |= ground[k:]
    return grown


@numba.njit(cache=True)
def _label_by_beta(depth, row_alpha, col_alpha, threshold):
    rows, cols = depth.shape
    label = np.full((rows, cols), -1, np.int64)
    queue = np.empty(rows * cols * 4 + 1, np.int64)
    count = 0
    for r0 in range(rows):
        for c0 in range(cols):
            if label[r0, c0] >= 0 or depth[r0, c0] < 0.001:
                continue
            _flood(label, count, r0 * cols + c0, depth, True, depth, row_alpha, col_alpha, threshold, queue)
            count += 1
    return label, count


def label_segments(depth, row_angles, col_step: float, beta_deg: float = 10.0):
    """Connected regions of a range image ``depth [R, C]`` (0: no return, or removed ground): 4-neighbours (columns
    wrap) join when their ``beta_angle`` exceeds ``beta_deg``; ``alpha`` is the elevation difference of the two
    rows or ``col_step``. Returns ``label [R, C]`` int64 (-1 where depth is 0; regions numbered in raster order of
    their first pixel) and the number of regions."""
    depth = np.ascontiguousarray(depth, np.float64)
    row_alpha = np.abs(np.diff(np.asarray(row_angles, np.float64)))
    if len(row_alpha) == 0:
        row_alpha = np.zeros(1)
    if depth.size == 0:
        return np.full(depth.shape, -1, np.int64), 0
    label, count = _label_by_beta(depth, np.ascontiguousarray(row_alpha), float(col_step), np.radians(beta_deg))
    return label, int(count)


def lidar_segments(points, rings, num_rings: int, cols: int, elevations=None, beta_deg: float = 10.0,
                   min_points: int = 20, max_points: int = 100000, ground_kwargs=None) -> LidarSegments:
    """Segment proposals of one sweep: ``points [N, >=3]`` x y z (sensor frame, metres) and ``rings [N]``; see
    ``range_image`` and the module docstring. Segments with fewer than ``min_points`` or more than ``max_points``
    points are dropped (their points get -1, as the ground's); the kept ones are renumbered 0 .. S - 1 in order of
    their first pixel."""
    image = range_image(points, rings, num_rings, cols, elevations)
    ground_pix = ground_mask(image.depth, image.row_angles, **(ground_kwargs or {}))
    repaired = repair_depth(image.depth)
    label, count = label_segments(np.where(ground_pix, 0.0, repaired), image.row_angles, image.col_step, beta_deg)
    ground = ground_pix[image.row, image.col]
    per_point = label[image.row, image.col] if len(image.row) else np.zeros(0, np.int64)
    per_point = np.where(ground, -1, per_point)
    sizes = np.bincount(per_point[per_point >= 0], minlength=count)
    keep = (sizes >= min_points) & (sizes <= max_points)
    new_id = np.full(count + 1, -1, np.int64)
    new_id[:-1][keep] = np.arange(int(keep.sum()))
    segment = new_id[np.where(per_point >= 0, per_point, count)]
    return LidarSegments(segment, ground, int(keep.sum()), image)
