"""Point grouping for masked point modelling and the Chamfer distance, against brute-force float64 versions:
farthest point sampling and kNN on odd sizes (ties included), the centred neighbourhoods, Chamfer golden values,
gradients by finite differences, bad and empty input."""
import numpy as np
import pytest
import torch

from pc_kd.ops import chamfer_distance, farthest_point_sample, group_neighbourhoods, knn_indices


def _fps_brute(points: np.ndarray, num: int) -> list:
    """One cloud, plain Python: start at 0, then the point farthest (squared) from the chosen set, first on ties."""
    chosen = [0]
    while len(chosen) < num:
        best, best_d = None, -1.0
        for i, p in enumerate(points):
            d = min(float(((p - points[c]) ** 2).sum()) for c in chosen)
            if d > best_d:
                best, best_d = i, d
        chosen.append(best)
    return chosen[:num]


@pytest.mark.parametrize("n, num", [(1, 1), (7, 3), (33, 33), (50, 17)])
def test_farthest_point_sample_matches_the_brute_force_loop(n, num):
    g = torch.Generator().manual_seed(n)
    points = torch.randn(3, n, 3, generator=g, dtype=torch.float64)
    out = farthest_point_sample(points, num)
    assert out.shape == (3, num) and out.dtype == torch.long
    for b in range(3):
        assert out[b].tolist() == _fps_brute(points[b].numpy(), num)
    assert farthest_point_sample(points, 0).shape == (3, 0)


def test_farthest_point_sample_takes_the_first_of_equal_distances():
    # a square's corners around point 0 at the centre: all four are equally far (2), so the lowest index wins;
    # after it the other three are still 2 from the chosen set (their distance to the centre), so again the lowest
    points = torch.tensor([[[0.0, 0, 0], [1, 1, 0], [-1, 1, 0], [-1, -1, 0], [1, -1, 0]]])
    assert farthest_point_sample(points, 3)[0].tolist() == [0, 1, 2]
    assert farthest_point_sample(points, 3)[0].tolist() == _fps_brute(points[0].numpy(), 3)


def test_knn_and_neighbourhoods_match_sorting_every_distance():
    g = torch.Generator().manual_seed(5)
    points = torch.randn(2, 41, 3, generator=g, dtype=torch.float64)
    groups, centres, idx = group_neighbourhoods(points, 7, 5)
    assert groups.shape == (2, 7, 5, 3) and centres.shape == (2, 7, 3) and idx.shape == (2, 7, 5)
    for b in range(2):
        fps = _fps_brute(points[b].numpy(), 7)
        assert torch.equal(centres[b], points[b, fps])
        for j in range(7):
            d = ((points[b] - centres[b, j]) ** 2).sum(-1).numpy()
            expected = np.sort(d)[:5]
            got = d[idx[b, j].numpy()]
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)  # the 5 nearest, nearest first
            torch.testing.assert_close(groups[b, j], points[b, idx[b, j]] - centres[b, j], rtol=0, atol=0)
    assert idx[..., 0].eq(torch.stack([torch.tensor(_fps_brute(p.numpy(), 7)) for p in points])).all()  # itself
    assert knn_indices(points, centres, 0).shape == (2, 7, 0)


def test_bad_point_input_is_named():
    with pytest.raises(ValueError, match=r"float \[B, N, 3\]"):
        farthest_point_sample(torch.zeros(4, 3), 2)
    with pytest.raises(ValueError, match="cannot choose 5 centres from 4 points"):
        farthest_point_sample(torch.zeros(1, 4, 3), 5)
    with pytest.raises(ValueError, match="k = 9 neighbours from 4 points"):
        knn_indices(torch.zeros(1, 4, 3), torch.zeros(1, 2, 3), 9)
    with pytest.raises(ValueError, match="2 point clouds for 1 query sets"):
        knn_indices(torch.zeros(2, 4, 3), torch.zeros(1, 2, 3), 1)


def _chamfer_brute(a: np.ndarray, b: np.ndarray, kind: str) -> float:
    d1 = [min(float(((p - q) ** 2).sum()) for q in b) for p in a]
    d2 = [min(float(((p - q) ** 2).sum()) for q in a) for p in b]
    if kind == "l2":
        return np.mean(d1) + np.mean(d2)
    return (np.mean(np.sqrt(d1)) + np.mean(np.sqrt(d2))) / 2


def test_chamfer_golden_values():
    a = torch.tensor([[[0.0, 0, 0], [1, 0, 0]]])
    b = torch.tensor([[[0.0, 0, 0]]])
    # d1 = [0, 1], d2 = [0]: CD-L2 = 0.5 + 0; CD-L1 = (0.5 + 0) / 2
    assert chamfer_distance(a, b, "l2").item() == pytest.approx(0.5)
    assert chamfer_distance(a, b, "l1").item() == pytest.approx(0.25, abs=1e-6)
    c = torch.tensor([[[0.0, 3, 4], [0, 0, 0]]])
    # a vs c: d1 = [0, 1]; d2 = [25, 0] -> CD-L2 = 0.5 + 12.5, CD-L1 = (0.5 + 2.5) / 2
    assert chamfer_distance(a, c, "l2").item() == pytest.approx(13.0)
    assert chamfer_distance(a, c, "l1").item() == pytest.approx(1.5, abs=1e-6)


@pytest.mark.parametrize("kind", ["l1", "l2"])
@pytest.mark.parametrize("n, m", [(1, 1), (5, 9), (17, 4)])
def test_chamfer_matches_brute_force_and_its_gradients_finite_differences(kind, n, m):
    g = torch.Generator().manual_seed(n * 10 + m)
    a = torch.randn(2, n, 3, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, m, 3, generator=g, dtype=torch.float64, requires_grad=True)
    out = chamfer_distance(a, b, kind)
    for i in range(2):
        assert out[i].item() == pytest.approx(_chamfer_brute(a[i].detach().numpy(), b[i].detach().numpy(), kind),
                                              rel=1e-9, abs=1e-9)
    assert torch.autograd.gradcheck(lambda x, y: chamfer_distance(x, y, kind), (a, b))


def test_chamfer_gradient_is_finite_where_points_coincide_and_bad_input_is_named():
    a = torch.tensor([[[0.0, 0, 0], [1, 0, 0]]], requires_grad=True)
    chamfer_distance(a, a.detach().clone(), "l1").backward()
    assert torch.isfinite(a.grad).all()
    with pytest.raises(ValueError, match="kind must be one of"):
        chamfer_distance(a, a, "l3")
    with pytest.raises(ValueError, match="empty point set"):
        chamfer_distance(a, torch.zeros(1, 0, 3), "l2")
    with pytest.raises(ValueError, match="batch sizes differ"):
        chamfer_distance(a, torch.zeros(2, 3, 3), "l2")


def test_tokens_depend_on_their_own_group_only_whatever_the_point_order():
    from pc_kd.models.backbones import CentrePositionEmbedding, MiniPointNetTokenizer

    torch.manual_seed(0)
    tokenizer = MiniPointNetTokenizer(embed_dim=24).eval()  # eval: batch norm does not mix the groups
    g = torch.Generator().manual_seed(1)
    groups = torch.randn(2, 5, 7, 3, generator=g)
    tokens = tokenizer(groups)
    assert tokens.shape == (2, 5, 24)
    shuffled = groups[:, :, torch.randperm(7, generator=g)]
    torch.testing.assert_close(tokenizer(shuffled), tokens, rtol=1e-5, atol=1e-5)  # order within a group
    changed = groups.clone()
    changed[1, 3] += 1.0  # one group moved: only its token changes
    diff = (tokenizer(changed) - tokens).abs().amax(-1)
    assert diff[1, 3] > 1e-3 and diff.flatten()[torch.arange(10) != 8].max() < 1e-6
    with pytest.raises(ValueError, match=r"\[B, G, K, 3\]"):
        tokenizer(groups[0])
    pos = CentrePositionEmbedding(embed_dim=24)
    assert pos(torch.zeros(2, 5, 3)).shape == (2, 5, 24)
