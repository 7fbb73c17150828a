"""Mixed precision: losses that compute in float32 whatever precision the network ran in.

Under ``torch.autocast`` (mmengine's ``AmpOptimWrapper``) a network's outputs come out float16 or bfloat16. A loss
on them in that precision breaks in the usual ways: ``1 - 1e-4`` rounds to 1 in float16, so a clamped
probability's ``log(1 - p)`` is ``-inf``; a squared difference or a norm over hundreds of channels passes float16's
65504; ``F.binary_cross_entropy`` refuses to run under CUDA autocast at all. :func:`float32_loss` runs a loss with
its half-precision tensor arguments cast to float32 and autocast off, as mmcv's ``force_fp32`` did for mmdet3d.
"""
import contextlib
import functools
from typing import Any, Callable, Optional

import torch

HALF_DTYPES = (torch.float16, torch.bfloat16)


def to_float32(x: Any) -> Any:
    """``x`` with every float16 / bfloat16 tensor in it (also inside lists, tuples and dicts) cast to float32;
    other tensors (float64, integers, bool) and other objects unchanged."""
    if isinstance(x, torch.Tensor):
        return x.float() if x.dtype in HALF_DTYPES else x
    if isinstance(x, dict):
        return {k: to_float32(v) for k, v in x.items()}
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # a named tuple
        return type(x)(*(to_float32(v) for v in x))
    if isinstance(x, (list, tuple)):
        return type(x)(to_float32(v) for v in x)
    return x


def _first_tensor(x: Any) -> Optional[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return x
    values = x.values() if isinstance(x, dict) else x if isinstance(x, (list, tuple)) else ()
    for v in values:
        found = _first_tensor(v)
        if found is not None:
            return found
    return None


def float32_loss(fn: Callable) -> Callable:
    """Decorator: call ``fn`` with its float16 / bfloat16 tensor arguments (positional and keyword, nested in
    lists / dicts too) in float32 and autocast disabled on their device. Gradients flow back in the arguments'
    own precision (the casts are differentiable). Float32 and float64 inputs are passed through unchanged."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        first = _first_tensor([args, kwargs])
        autocast_on = first is not None and torch.is_autocast_enabled(first.device.type)
        with torch.autocast(device_type=first.device.type, enabled=False) if autocast_on else contextlib.nullcontext():
            return fn(*to_float32(args), **to_float32(kwargs))

    return wrapper
