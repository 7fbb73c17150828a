"""LiDAR segment proposals on the range image (pc_kd.voxel.range_segments): beta against the triangle it measures,
the smoothing against scipy's Savitzky-Golay filter, the numba region growers against connected components of the
same graph (scipy), the gap repair against a plain loop, and whole sweeps of hand-made scenes (a box on the
ground, two boxes, a wall) ray-cast by the synthetic LiDAR; one real nuScenes sweep against its box labels."""
import numpy as np
import pytest
from scipy.signal import savgol_filter
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from pc_kd.datasets.synthetic.driving import BEAM_ELEVATIONS_DEG, DrivingScene, lidar2ego_matrix, simulate_lidar
from pc_kd.structures.class_names import NUSCENES_CLASSES
from pc_kd.voxel.range_segments import (beta_angle, ground_mask, label_segments, lidar_segments, range_image,
                                        repair_depth, savitzky_golay_rows, slope_image)


def _angle_at_far_return(d_a, d_b, alpha):
    """The angle, at the farther of two returns seen ``alpha`` apart, between its ray back to the sensor and the
    line to the nearer return: plain vector geometry in the plane of the two rays."""
    far, near = max(d_a, d_b), min(d_a, d_b)
    a = np.array([far, 0.0])
    b = near * np.array([np.cos(alpha), np.sin(alpha)])
    u, v = -a, b - a
    return np.arccos(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v))


@pytest.mark.parametrize("d_a, d_b, alpha_deg", [(10.0, 10.0, 0.4), (20.0, 10.0, 0.4), (5.0, 7.5, 1.33),
                                                 (30.0, 29.0, 2.0), (12.0, 12.3, 0.2)])
def test_beta_is_the_angle_at_the_farther_return(d_a, d_b, alpha_deg):
    alpha = np.radians(alpha_deg)
    assert beta_angle(d_a, d_b, alpha) == pytest.approx(_angle_at_far_return(d_a, d_b, alpha), abs=1e-9)
    assert beta_angle(d_a, d_b, alpha) == pytest.approx(beta_angle(d_b, d_a, alpha))


def test_beta_wall_facing_the_sensor_near_90_grazing_plane_small():
    alpha = np.radians(1.33)  # two beams 1.33 deg apart
    up, down = np.radians(0.665), np.radians(-0.665)
    wall = beta_angle(10.0 / np.cos(up), 10.0 / np.cos(down), alpha)  # the wall x = 10 m, straight ahead
    assert np.degrees(wall) == pytest.approx(90.0 - 1.33 / 2, abs=0.01)
    low, lower = np.radians(-5.0), np.radians(-5.0 - 1.33)  # the ground 1.84 m below, far ahead
    grazing = beta_angle(1.84 / np.sin(-low), 1.84 / np.sin(-lower), alpha)
    assert np.degrees(grazing) == pytest.approx(5.0)  # on flat ground, beta is the farther ray's depression
    assert np.degrees(beta_angle(20.0, 10.0, np.radians(0.4))) < 1.0  # a depth jump between two objects


def test_savitzky_golay_is_scipys_mirror_filter():
    rng = np.random.default_rng(0)
    for rows, cols in [(32, 17), (9, 3), (5, 4), (2, 1)]:
        image = rng.random((rows, cols))
        np.testing.assert_allclose(savitzky_golay_rows(image, 9), savgol_filter(image, 9, 2, axis=0, mode="mirror"),
                                   atol=1e-12)
    np.testing.assert_allclose(savitzky_golay_rows(image := rng.random((20, 3)), 5),
                               savgol_filter(image, 5, 2, axis=0, mode="mirror"), atol=1e-12)
    with pytest.raises(ValueError, match="odd"):
        savitzky_golay_rows(image, 8)


def _repair_loop(depth, step=5, tolerance=1.0):
    out = [list(map(float, row)) for row in depth]
    rows, cols = len(out), len(out[0])
    for c in range(cols):
        for r in range(rows):
            if out[r][c] >= 0.001:
                continue
            pairs = [(out[r - i][c], out[r + j][c]) for i in range(1, step) for j in range(1, step)
                     if r - i >= 0 and r + j < rows]
            good = [p + n for p, n in pairs if p > 0.001 and n > 0.001 and abs(p - n) < tolerance]
            if good:
                out[r][c] = sum(good) / (2 * len(good))
    return np.array(out)


def test_repair_depth_is_the_plain_loop():
    rng = np.random.default_rng(1)
    depth = 10 + rng.random((23, 31)) * 1.5
    depth[rng.random(depth.shape) < 0.3] = 0.0
    np.testing.assert_allclose(repair_depth(depth), _repair_loop(depth), atol=1e-12)
    assert repair_depth(depth)[depth > 0].tolist() == depth[depth > 0].tolist()
    assert repair_depth(np.zeros((0, 4))).shape == (0, 4)


def _grid_edges(rows, cols):
    idx = np.arange(rows * cols).reshape(rows, cols)
    vertical = (idx[:-1].ravel(), idx[1:].ravel())
    horizontal = (idx.ravel(), np.roll(idx, -1, axis=1).ravel())
    return [vertical, horizontal]


def _same_partition(a, b):
    """Two labelings of the same items are one partition (labels renamed)."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("rows, cols", [(32, 90), (7, 13), (1, 5), (3, 2)])
def test_segments_are_connected_components_of_the_beta_graph(rows, cols):
    rng = np.random.default_rng(rows * cols)
    depth = rng.choice([5.0, 5.05, 12.0, 30.0], size=(rows, cols)) + rng.normal(0, 0.01, (rows, cols))
    depth[rng.random(depth.shape) < 0.15] = 0.0
    row_angles = np.radians(np.sort(rng.uniform(-30, 10, rows))[::-1])
    col_step = 2 * np.pi / cols
    label, count = label_segments(depth, row_angles, col_step, beta_deg=10.0)
    src, dst = [], []
    for k, (a, b) in enumerate(_grid_edges(rows, cols)):
        ra = a // cols
        alpha = col_step if k == 1 else np.abs(row_angles[ra + 1] - row_angles[ra]) if rows > 1 else 0.0
        da, db = depth.ravel()[a], depth.ravel()[b]
        ok = (da > 0) & (db > 0) & (beta_angle(da, db, alpha) > np.radians(10.0))
        src.append(a[ok])
        dst.append(b[ok])
    src, dst = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(src)), (src, dst)), shape=(rows * cols,) * 2)
    _, components = connected_components(graph, directed=False)
    valid = depth.ravel() > 0
    assert (label.ravel() >= 0).tolist() == valid.tolist()
    assert count == len(np.unique(components[valid]))
    assert _same_partition(label.ravel()[valid], components[valid])


def test_segments_of_an_empty_image():
    label, count = label_segments(np.zeros((4, 6)), np.radians([3.0, 1.0, -1.0, -3.0]), 0.1)
    assert count == 0 and (label == -1).all()
    label, count = label_segments(np.zeros((0, 6)), np.zeros(0), 0.1)
    assert count == 0 and label.shape == (0, 6)


def _ground_by_components(depth, smoothed, start, grow):
    """The ground as connected components: pixels with a return are joined to 4-neighbours whose smoothed slopes
    differ by < grow; a component is ground when it holds some column's lowest return with slope <= start (or
    that column's top pixel when it has none); empty pixels next to ground (slopes within grow) are ground too."""
    rows, cols = depth.shape
    flat_d, flat_s = depth.ravel(), smoothed.ravel()
    src, dst = [], []
    for a, b in _grid_edges(rows, cols):
        ok = np.abs(flat_s[a] - flat_s[b]) < grow
        src.append(a[ok])
        dst.append(b[ok])
    src, dst = np.concatenate(src), np.concatenate(dst)
    solid = flat_d >= 0.001
    both = solid[src] & solid[dst]
    graph = coo_matrix((np.ones(both.sum()), (src[both], dst[both])), shape=(rows * cols,) * 2)
    _, comp = connected_components(graph, directed=False)
    seeds = []
    for c in range(cols):
        r = rows - 1
        while r > 0 and depth[r, c] < 0.001:
            r -= 1
        if smoothed[r, c] <= start:
            seeds.append(r * cols + c)
    ground = np.zeros(rows * cols, bool)
    for s in seeds:
        ground |= (comp == comp[s]) if solid[s] else (np.arange(rows * cols) == s)
    grown = ground.copy()
    for a, b in zip(src, dst):  # empty pixels reached from a solid ground pixel
        for u, v in ((a, b), (b, a)):
            if ground[u] and solid[u] and not solid[v]:
                grown[v] = True
    return grown.reshape(rows, cols)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ground_growth_is_the_component_twin(seed):
    rng = np.random.default_rng(seed)
    rows, cols = 16, 40
    angles = np.radians(np.linspace(8, -25, rows))
    depth = np.where(angles[:, None] < np.radians(-2), 1.84 / np.sin(-np.minimum(angles[:, None], -1e-3)), 40.0)
    depth = depth * np.ones((1, cols)) + rng.normal(0, 0.05, (rows, cols))
    depth[rng.random(depth.shape) < 0.1] = 0.0
    depth[4:12, 10:14] = 9.0  # a wall
    smoothed = savitzky_golay_rows(slope_image(depth, angles), 9)
    got = ground_mask(depth, angles, dilate_rows=0, repair=False)
    np.testing.assert_array_equal(got, _ground_by_components(depth, smoothed, np.radians(30), np.radians(7)))
    dilated = ground_mask(depth, angles, dilate_rows=1, repair=False)
    assert (dilated[1:-1] == (got[1:-1] | got[:-2] | got[2:])).all()


def _scene(boxes, names):
    k = len(boxes)
    return DrivingScene(np.array(boxes, float).reshape(-1, 7), np.array([NUSCENES_CLASSES.index(n) for n in names]),
                        np.zeros((k, 2)), np.full(k, -1), np.full((k, 3), 128.0), np.eye(4))


def _sweep(boxes, names):
    points, target = simulate_lidar(_scene(boxes, names), 0)
    return points, target, lidar_segments(points, points[:, 4], 32, 900)


def test_a_box_on_the_ground_is_one_segment_and_the_ground_is_ground():
    points, target, seg = _sweep([[10.0, 3.0, 0.85, 4.6, 1.95, 1.7, 0.3]], ["car"])
    assert seg.ground[target == 0].mean() > 0.97
    on_box = seg.segment[target == 1]
    ids, counts = np.unique(on_box[on_box >= 0], return_counts=True)
    assert counts.max() >= 0.85 * len(on_box)  # the box's lowest row goes with the dilated ground
    in_segment = seg.segment == ids[counts.argmax()]
    # the rows of ground just before the box: its slope, smoothed over 9 rows, differs from the road's
    assert (target[in_segment] == 0).mean() < 0.15
    assert seg.num_segments == 1


def test_two_boxes_are_two_segments_and_a_wall_one():
    points, target, seg = _sweep([[10.0, 3.0, 0.85, 4.6, 1.95, 1.7, 0.3], [-9.0, -6.0, 1.5, 0.5, 12.0, 3.0, 0.0]],
                                 ["car", "barrier"])
    main = [np.bincount(seg.segment[(target == k) & (seg.segment >= 0)]).argmax() for k in (1, 2)]
    assert main[0] != main[1]
    wall = seg.segment[target == 2]
    assert (wall == main[1]).mean() > 0.85


def test_range_image_rows_follow_elevation_and_pixels_hold_the_nearest_return():
    points, _, seg = _sweep([[10.0, 3.0, 0.85, 4.6, 1.95, 1.7, 0.3]], ["car"])
    image = seg.image
    measured = np.degrees(image.row_angles)
    np.testing.assert_allclose(measured, BEAM_ELEVATIONS_DEG[::-1], atol=0.05)  # ring 0 is the lowest beam
    assert image.depth.shape == (32, 900)
    rng_ = np.linalg.norm(points[:, :3].astype(np.float64), axis=1)
    assert (image.depth[image.row, image.col] <= rng_ + 1e-9).all()
    azimuth = np.degrees(np.mod(np.arctan2(points[:, 1], points[:, 0]), 2 * np.pi))
    assert (np.abs(azimuth - (image.col + 0.5) * 0.4) <= 0.2 + 1e-3).all()
    assert lidar2ego_matrix().shape == (4, 4)


def test_bad_input_says_what_is_expected():
    with pytest.raises(ValueError, match=r"points: expected \[N, >=3\]"):
        range_image(np.zeros((5, 2)), np.zeros(5), 32, 900)
    with pytest.raises(ValueError, match=r"rings: expected \[N\]"):
        range_image(np.zeros((5, 3)), np.zeros(4), 32, 900)
    with pytest.raises(ValueError, match=r"rings: expected values in \[0, 32\)"):
        range_image(np.zeros((5, 3)), np.full(5, 40), 32, 900)
    with pytest.raises(ValueError, match="integer beam indices"):
        range_image(np.zeros((5, 3)), np.full(5, 0.5), 32, 900)
    empty = lidar_segments(np.zeros((0, 5)), np.zeros(0), 32, 900)
    assert empty.num_segments == 0 and empty.segment.shape == (0,)


@pytest.mark.realdata
def test_real_nuscenes_sweep_objects_fall_into_segments_and_the_road_into_ground(real_data):
    """A real scene-0916 key frame: 32 rings at the measured elevations; points inside annotated cars lie mostly
    in segments, and the ground near the car (a disc of 3..15 m, below 0.3 m above the wheels) mostly in ground."""
    from nuscenes.nuscenes import NuScenes
    from nuscenes.utils.data_classes import LidarPointCloud

    root = real_data / "nuscenes_2scenes"
    nusc = NuScenes("v1.0-trainval", str(root), verbose=False)
    scene = next(s for s in nusc.scene if s["name"] == "scene-0916")
    sample = nusc.get("sample", scene["first_sample_token"])
    lidar = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    points = np.fromfile(root / lidar["filename"], np.float32).reshape(-1, 5)
    seg = lidar_segments(points, points[:, 4], 32, 1090)
    assert np.degrees(seg.image.row_angles[[0, -1]]) == pytest.approx([10.7, -30.7], abs=0.2)
    _, boxes, _ = nusc.get_sample_data(lidar["token"])
    in_cars = np.zeros(len(points), bool)
    from nuscenes.utils.geometry_utils import points_in_box
    for box in boxes:
        if box.name.startswith("vehicle.car"):
            in_cars |= points_in_box(box, points[:, :3].T)
    assert in_cars.sum() > 200
    assert (seg.segment[in_cars] >= 0).mean() > 0.5
    radius = np.hypot(points[:, 0], points[:, 1])
    road = (radius > 3) & (radius < 15) & (points[:, 2] < -1.5) & ~in_cars
    assert road.sum() > 1000 and seg.ground[road].mean() > 0.9
    assert LidarPointCloud.nbr_dims() == 4
