"""scatter_reduce_points against a per-segment loop, forward and gradients."""
import pytest
import torch

from pc_kd.ops import scatter_reduce_points

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _naive(feats, index, num_segments, reduce):
    rows = []
    for s in range(num_segments):
        members = feats[index == s]
        if len(members) == 0:
            rows.append(feats.new_zeros(feats.shape[1]) + 0 * feats.sum())
        else:
            rows.append(dict(sum=members.sum(0), mean=members.mean(0), max=members.max(0).values,
                             min=members.min(0).values)[reduce])
    return torch.stack(rows)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min"])
def test_matches_per_segment_loop(reduce, device):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(53, 5, generator=g, dtype=torch.float64)
    index = torch.randint(-1, 11, (53,), generator=g)  # -1 drops a point; segment ids up to 10, 12 segments
    a, b = feats.clone().to(device).requires_grad_(True), feats.clone().requires_grad_(True)
    out = scatter_reduce_points(a, index.to(device), 12, reduce).cpu()
    ref = _naive(b, index, 12, reduce)
    torch.testing.assert_close(out, ref)
    assert (out[11] == 0).all()  # an empty segment
    grad = torch.randn_like(ref)
    (out * grad).sum().backward()
    (ref * grad).sum().backward()
    torch.testing.assert_close(a.grad.cpu(), b.grad)


def test_empty_input_and_bad_input():
    assert scatter_reduce_points(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 4).shape == (4, 3)
    with pytest.raises(ValueError, match=r"index values must lie in \[-1, 4\), got \[0, 4\]"):
        scatter_reduce_points(torch.zeros(2, 3), torch.tensor([0, 4]), 4)
    with pytest.raises(ValueError, match=r"index must be \[N\] = \[2\]"):
        scatter_reduce_points(torch.zeros(2, 3), torch.tensor([0, 1, 2]), 4)
    with pytest.raises(ValueError, match="reduce must be one of"):
        scatter_reduce_points(torch.zeros(2, 3), torch.tensor([0, 1]), 4, "median")
