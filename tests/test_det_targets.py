"""CenterPoint's target and post-processing helpers against formulas and loops typed here."""
import math

import numpy as np
import pytest
import torch

from pc_kd.heads.det import draw_gaussian, gaussian_2d, gaussian_radius
from pc_kd.ops.nms import circle_nms, circle_nms_loop


def _radius_by_hand(h, w, o):
    """CornerNet's three cases as CenterPoint's code writes them ((b + sqrt(b^2 - 4ac)) / 2 each)."""
    r1 = ((h + w) + math.sqrt((h + w) ** 2 - 4 * 1 * (w * h * (1 - o) / (1 + o)))) / 2
    r2 = (2 * (h + w) + math.sqrt((2 * (h + w)) ** 2 - 4 * 4 * ((1 - o) * w * h))) / 2
    r3 = (-2 * o * (h + w) + math.sqrt((2 * o * (h + w)) ** 2 - 4 * (4 * o) * ((o - 1) * w * h))) / 2
    return min(r1, r2, r3)


def test_gaussian_radius_is_centerpoints_formula_on_200_sizes():
    rng = np.random.default_rng(0)
    h, w = rng.uniform(0.2, 60, 200), rng.uniform(0.2, 60, 200)
    for overlap in (0.1, 0.5, 0.7):
        expected = [_radius_by_hand(a, b, overlap) for a, b in zip(h, w)]
        np.testing.assert_allclose([gaussian_radius(a, b, overlap) for a, b in zip(h, w)], expected, rtol=1e-12)
        tensor = gaussian_radius(torch.from_numpy(h), torch.from_numpy(w), overlap)
        np.testing.assert_allclose(tensor.numpy(), expected, rtol=1e-12)
    # the quirk is kept: the true CornerNet root of case 1 is smaller than what is returned
    a, b = 4.0, 10.0
    true_r1 = ((a + b) - math.sqrt((a + b) ** 2 - 4 * (a * b * 0.5 / 1.5))) / 2
    assert gaussian_radius(a, b, 0.5) > true_r1


def _draw_by_loop(shape, center, radius, k=1.0):
    out = torch.zeros(shape, dtype=torch.float64)
    sigma = (2 * radius + 1) / 6
    eps = np.finfo(np.float32).eps
    for yy in range(shape[0]):
        for xx in range(shape[1]):
            dx, dy = xx - center[0], yy - center[1]
            if abs(dx) <= radius and abs(dy) <= radius:
                v = math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma))
                out[yy, xx] = k * v if v >= eps else 0.0
    return out


@pytest.mark.parametrize("center,radius", [((5, 6), 2), ((0, 0), 3), ((10, 3), 4), ((-2, 5), 3), ((12, 9), 3),
                                           ((-5, 2), 3), ((4, 4), 0), ((6, -1), 1)])
def test_draw_gaussian_equals_a_per_cell_loop_with_borders_clipped(center, radius):
    shape = (9, 11)
    heat = torch.zeros(shape, dtype=torch.float64)
    draw_gaussian(heat, center, radius, k=0.8)
    torch.testing.assert_close(heat, _draw_by_loop(shape, center, radius, 0.8), rtol=1e-6, atol=1e-7)
    if 0 <= center[0] < shape[1] and 0 <= center[1] < shape[0]:
        assert heat[center[1], center[0]] == pytest.approx(0.8) and heat.max() == pytest.approx(0.8)


def test_draw_gaussian_keeps_the_maximum_of_overlapping_peaks():
    heat = torch.zeros(12, 12)
    draw_gaussian(heat, (4, 4), 3)
    draw_gaussian(heat, (6, 5), 2, k=0.5)
    expected = torch.maximum(_draw_by_loop((12, 12), (4, 4), 3), _draw_by_loop((12, 12), (6, 5), 2, 0.5))
    torch.testing.assert_close(heat.double(), expected, rtol=1e-6, atol=1e-7)
    assert gaussian_2d(2).shape == (5, 5) and gaussian_2d(0).item() == 1.0
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        draw_gaussian(torch.zeros(1, 4, 4), (1, 1), 1)


@pytest.mark.parametrize("n,radius_sq,post_max", [(0, 1.0, None), (1, 1.0, None), (37, 4.0, None),
                                                  (301, 1.0, 83), (301, 0.175, None), (120, 12.0, 5),
                                                  (50, 1.0, 0)])
def test_circle_nms_equals_its_loop(n, radius_sq, post_max):
    g = torch.Generator().manual_seed(n)
    centers = torch.rand(n, 2, generator=g) * 20 - 10
    scores = torch.rand(n, generator=g)
    if n > 10:
        scores[3] = scores[7]  # a tie: input order decides
    keep = circle_nms(centers, scores, radius_sq, post_max)
    assert keep.dtype == torch.int64
    torch.testing.assert_close(keep, circle_nms_loop(centers, scores, radius_sq, post_max))
    if len(keep) > 1:
        assert (scores[keep][:-1] >= scores[keep][1:]).all()
        d2 = torch.cdist(centers[keep].double(), centers[keep].double()) ** 2
        assert (d2 + torch.eye(len(keep), dtype=torch.float64) * 1e9 > radius_sq).all()


def test_circle_nms_compares_the_squared_distance():
    centers = torch.tensor([[0.0, 0.0], [1.5, 0.0], [3.5, 0.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    # 1.5 m apart: inside radius_sq = 2.25 (a 1.5 m "radius" squared), outside radius_sq = 2.0
    assert circle_nms(centers, scores, 2.25).tolist() == [0, 2]
    assert circle_nms(centers, scores, 2.0).tolist() == [0, 1, 2]
    assert circle_nms(centers, scores, 4.0).tolist() == [0, 2]  # 3.5^2 = 12.25 > 4


def test_circle_nms_bad_input_is_named():
    with pytest.raises(ValueError, match=r"centers must be \[N, 2\]"):
        circle_nms(torch.zeros(3, 3), torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match=r"scores must be \[N\]"):
        circle_nms(torch.zeros(3, 2), torch.zeros(4), 1.0)
    with pytest.raises(ValueError, match="finite"):
        circle_nms(torch.zeros(2, 2), torch.tensor([0.5, float("nan")]), 1.0)
