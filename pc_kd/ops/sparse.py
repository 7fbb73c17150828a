"""Sparse-convolution backend shim: one import for spconv 2.x and spconv-triton.

Use it as the spconv namespace::

    from pc_kd.ops import sparse as sp
    x = sp.SparseConvTensor(feats [N, C], indices [N, 4] int32 (batch, z, y, x), spatial_shape, batch_size)
    y = sp.SubMConv3d(C, 32, 3, indice_key="subm1")(x)

Backends, in the order they are tried (``PC_KD_SPARSE_BACKEND=spconv|spconv_triton`` forces one):

* ``spconv`` (``spconv-cu120`` / ``spconv-cu126`` wheels): they import without a GPU. Their implicit-GEMM
  algorithms are CUDA-only, and the CPU-only ``spconv`` wheel is wrong with more than one torch thread, so every
  convolution made here runs ``ConvAlgo.Native`` whenever its input lies on the CPU (exact against a dense
  ``conv3d``) and the algorithm it was built with on CUDA.
* ``spconv_triton``: the spconv API in Triton (CUDA / ROCm only).

Importing this module imports neither; the first attribute access does, and raises ``ImportError`` with the
install command when neither is installed.
"""
import importlib
import os
import sys
import warnings

_EXPORTED = ("SubMConv3d", "SparseConv3d", "SparseInverseConv3d", "SparseSequential", "SparseConvTensor",
             "SparseModule")
_CONV_CLASSES = ("SubMConv3d", "SparseConv3d", "SparseInverseConv3d")
_cache = {}

INSTALL_HINT = (
    "pc_kd needs a sparse-convolution backend. Install one of:\n"
    "  pip install 'pc_kd[spconv]'            # spconv-cu120 (Python <= 3.11) / spconv-cu126 (3.12); "
    "also runs on CPU\n"
    "  pip install spconv-triton              # Triton port, CUDA/ROCm GPUs only\n"
    "or set PC_KD_SPARSE_BACKEND to the one you installed.")


def _import_backend(name: str):
    if name == "spconv":
        with warnings.catch_warnings():
            # spconv 2.3 decorates its autograd functions with torch.cuda.amp.custom_fwd / custom_bwd, which torch
            # >= 2.4 deprecates (one FutureWarning per function at import); the decorators still work
            warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.custom_(fwd|bwd)", category=FutureWarning)
            return importlib.import_module("spconv.pytorch")
    if name == "spconv_triton":
        return importlib.import_module("spconv_triton.pytorch")
    raise ValueError(f"PC_KD_SPARSE_BACKEND={name!r}: expected 'spconv' or 'spconv_triton'")


def backend_name() -> str:
    """Name of the backend in use ('spconv' or 'spconv_triton'); imports it on first call."""
    _backend()
    return _cache["name"]


def _backend():
    if "module" in _cache:
        return _cache["module"]
    forced = os.environ.get("PC_KD_SPARSE_BACKEND")
    candidates = [forced] if forced else ["spconv", "spconv_triton"]
    errors = []
    for name in candidates:
        try:
            module = _import_backend(name)
        except ImportError as err:
            errors.append(f"{name}: {err}")
            continue
        _cache.update(module=module, name=name)
        return module
    raise ImportError(INSTALL_HINT + "\nImport errors: " + "; ".join(errors))


def _device_aware(cls):
    """Subclass a spconv conv so that CPU inputs always run ConvAlgo.Native (see the module docstring), in
    float32 when they come in another precision or under ``torch.autocast("cpu")``."""
    import torch
    from spconv.core import ConvAlgo

    cpu_dtypes = (torch.float32, torch.float64)

    class DeviceAwareConv(cls):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._cuda_algo = self.algo

        def forward(self, input):  # noqa: A002 - spconv's argument name
            if input.features.is_cuda:
                self.algo = self._cuda_algo
                return super().forward(input)
            self.algo = ConvAlgo.Native
            feats = input.features
            if not torch.is_autocast_enabled("cpu") and feats.dtype in cpu_dtypes:
                return super().forward(input)
            # spconv's CPU path takes float32 / float64 only, and CPU autocast would reach the torch ops inside it:
            # run it as autocast runs the ops it keeps in float32 (on CUDA, spconv casts to float16 itself)
            with torch.autocast("cpu", enabled=False):
                return super().forward(input.replace_feature(feats if feats.dtype in cpu_dtypes else feats.float()))

    DeviceAwareConv.__name__ = DeviceAwareConv.__qualname__ = cls.__name__
    DeviceAwareConv.__module__ = __name__
    return DeviceAwareConv


def _contiguous_tensor(cls):
    """SparseConvTensor that makes ``indices`` contiguous int32 and ``features`` contiguous: spconv reads the
    indices buffer as row-major and silently gives wrong results for a transposed view (``nonzero().int()``)."""

    class SparseConvTensor(cls):
        def __init__(self, features, indices, spatial_shape, batch_size, *args, **kwargs):
            if indices.ndim != 2 or indices.shape[0] != features.shape[0]:
                raise ValueError(f"SparseConvTensor: indices must be [N, 4] (batch, z, y, x) for features "
                                 f"[N, C]; got indices {tuple(indices.shape)}, features {tuple(features.shape)}")
            super().__init__(features.contiguous(), indices.int().contiguous(), spatial_shape, batch_size,
                             *args, **kwargs)

    SparseConvTensor.__module__ = __name__
    return SparseConvTensor


def __getattr__(name):
    if name not in _EXPORTED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name not in _cache:
        module = _backend()
        obj = getattr(module, name)
        if _cache["name"] == "spconv" and name in _CONV_CLASSES:
            obj = _device_aware(obj)
        elif name == "SparseConvTensor":
            obj = _contiguous_tensor(obj)
        _cache[name] = obj
    return _cache[name]


def __dir__():
    return sorted(list(globals()) + list(_EXPORTED))


# `from pc_kd.ops.sparse import *` should not import a backend.
__all__ = ["backend_name", "INSTALL_HINT"]
del sys
