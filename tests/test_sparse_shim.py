"""The sparse-conv shim is exact on CPU with 2 torch threads against dense conv3d (forward and backward)."""
import importlib
import sys

import pytest
import torch
import torch.nn.functional as F

from pc_kd.ops import sparse as sp


def _random_sparse(shape, channels, density, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(2, *shape, generator=g) < density
    idx = mask.nonzero()  # (b, z, y, x)
    feats = torch.randn(len(idx), channels, generator=g, dtype=dtype)
    return idx.int(), feats, mask


def _dense(idx, feats, shape, batch):
    dense = feats.new_zeros(batch, feats.shape[1], *shape)
    dense[idx[:, 0].long(), :, idx[:, 1].long(), idx[:, 2].long(), idx[:, 3].long()] = feats
    return dense


def _dense_weight(conv):
    """A leaf copy of the spconv weight in conv3d's layout: spconv stores [out, kz, ky, kx, in] (KRSC),
    conv3d wants [out, in, kz, ky, kx]."""
    return conv.weight.detach().permute(0, 4, 1, 2, 3).clone().requires_grad_(True)


def _assert_same_gradients(out, ref, feats_sp, feats_d, conv, weight_d):
    """Backpropagate one random upstream gradient through both; input and weight gradients must agree."""
    grad = torch.randn_like(ref)
    (out * grad).sum().backward()
    (ref * grad).sum().backward()
    torch.testing.assert_close(feats_sp.grad, feats_d.grad, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(conv.weight.grad.permute(0, 4, 1, 2, 3), weight_d.grad, rtol=1e-10, atol=1e-10)


@pytest.fixture(autouse=True)
def two_threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


@pytest.mark.parametrize("shape", [(7, 9, 11), (5, 6, 13)])
def test_subm_conv_matches_dense_conv3d(shape):
    idx, feats, mask = _random_sparse(shape, 5, 0.3, seed=sum(shape))
    conv = sp.SubMConv3d(5, 7, 3, padding=1, bias=True, indice_key="s").double()
    feats_sp = feats.clone().requires_grad_(True)
    out = conv(sp.SparseConvTensor(feats_sp, idx, list(shape), 2))
    feats_d = feats.clone().requires_grad_(True)
    dense_in = _dense(idx, feats_d, shape, 2)
    weight_d = _dense_weight(conv)
    ref = F.conv3d(dense_in, weight_d, conv.bias, padding=1)
    ref_at_active = ref[idx[:, 0].long(), :, idx[:, 1].long(), idx[:, 2].long(), idx[:, 3].long()]
    # SubM output lives on the input sites; compare there (row order of out.indices may differ).
    out_dense = _dense(out.indices, out.features, shape, 2)
    out_at_active = out_dense[idx[:, 0].long(), :, idx[:, 1].long(), idx[:, 2].long(), idx[:, 3].long()]
    torch.testing.assert_close(out_at_active, ref_at_active, rtol=1e-10, atol=1e-10)
    _assert_same_gradients(out_at_active, ref_at_active, feats_sp, feats_d, conv, weight_d)


@pytest.mark.parametrize("kernel,stride,padding", [(3, 2, 1), (2, 2, 0)])
def test_strided_sparse_conv_matches_dense_conv3d(kernel, stride, padding):
    shape = (9, 8, 11)
    idx, feats, mask = _random_sparse(shape, 4, 0.25, seed=kernel)
    conv = sp.SparseConv3d(4, 6, kernel, stride=stride, padding=padding, bias=False).double()
    feats_sp = feats.clone().requires_grad_(True)
    out = conv(sp.SparseConvTensor(feats_sp, idx, list(shape), 2))
    feats_d = feats.clone().requires_grad_(True)
    weight_d = _dense_weight(conv)
    ref = F.conv3d(_dense(idx, feats_d, shape, 2), weight_d, None, stride=stride, padding=padding)
    out_dense = out.dense()
    assert out_dense.shape == ref.shape
    # Sites a regular sparse conv does not produce are exactly those whose receptive field is empty.
    torch.testing.assert_close(out_dense, ref, rtol=1e-10, atol=1e-10)
    _assert_same_gradients(out_dense, ref, feats_sp, feats_d, conv, weight_d)


def test_float32_unet_sized_layers_run_on_cpu():
    shape = (16, 16, 16)
    idx, feats, _ = _random_sparse(shape, 6, 0.1, seed=1, dtype=torch.float32)
    x = sp.SparseConvTensor(feats, idx, list(shape), 2)
    down = sp.SparseConv3d(6, 8, 2, stride=2, indice_key="d1")
    up = sp.SparseInverseConv3d(8, 6, 2, indice_key="d1")
    y = up(down(x))
    assert y.features.shape == feats.shape
    assert torch.equal(y.indices, x.indices)


def test_missing_backend_gives_install_hint(monkeypatch):
    import pc_kd.ops.sparse as module

    monkeypatch.setitem(sys.modules, "spconv", None)
    monkeypatch.setitem(sys.modules, "spconv.pytorch", None)
    monkeypatch.setitem(sys.modules, "spconv_triton", None)
    monkeypatch.setitem(sys.modules, "spconv_triton.pytorch", None)
    fresh = importlib.reload(module)
    try:
        with pytest.raises(ImportError, match="pip install 'pc_kd\\[spconv\\]'"):
            fresh.SubMConv3d
    finally:
        monkeypatch.undo()
        importlib.reload(module)


def test_unknown_forced_backend(monkeypatch):
    import pc_kd.ops.sparse as module

    monkeypatch.setenv("PC_KD_SPARSE_BACKEND", "spconv_v1")
    fresh = importlib.reload(module)
    try:
        with pytest.raises(ValueError, match="PC_KD_SPARSE_BACKEND"):
            fresh.backend_name()
    finally:
        monkeypatch.undo()
        importlib.reload(module)


def test_transposed_indices_are_made_contiguous():
    """spconv silently misreads a column-major indices tensor (``nonzero().int()``); the shim must not."""
    shape = (6, 7, 8)
    idx, feats, _ = _random_sparse(shape, 3, 0.3, seed=5)
    transposed = idx.t().contiguous().t()
    assert not transposed.is_contiguous()
    conv = sp.SubMConv3d(3, 4, 3, padding=1, indice_key="t").double()
    a = conv(sp.SparseConvTensor(feats, idx.contiguous(), list(shape), 2))
    b = conv(sp.SparseConvTensor(feats, transposed, list(shape), 2))
    torch.testing.assert_close(a.features, b.features)
