"""Mixed-precision training: mmengine's ``AmpOptimWrapper`` on a CUDA GPU, pc_kd's :class:`BFloat16OptimWrapper` on
the CPU (or a GPU); turning it on, and refusing what cannot work.

A config turns AMP on with ``optim_wrapper = dict(type="AmpOptimWrapper", dtype="float16" | "bfloat16",
loss_scale="dynamic", optimizer=...)`` or ``optim_wrapper = dict(type="BFloat16OptimWrapper", optimizer=...)``;
``tools/train.py --amp [float16|bfloat16]`` does the same to any config (:func:`enable_amp`: bfloat16 without a GPU
takes ``BFloat16OptimWrapper``). The forward pass then runs under autocast: dense convolutions and linear layers in
the chosen precision, spconv's sparse convolutions in float16 on CUDA (spconv casts their inputs itself) and
float32 on the CPU, losses in float32 (:func:`pc_kd.utils.precision.float32_loss`), parameters and optimiser state
in float32. mmengine's wrapper needs a CUDA device; on a machine without one :func:`check_amp_option` stops with
what to do instead.
"""
import logging
from contextlib import contextmanager

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper

from ..registry import OPTIM_WRAPPERS
from .config_checks import ConfigError

AMP_DTYPES = ("float16", "bfloat16")


@OPTIM_WRAPPERS.register_module()
class BFloat16OptimWrapper(OptimWrapper):
    """mmengine's ``OptimWrapper`` with the forward pass (``optim_context``, which the model's ``train_step`` enters)
    under ``torch.autocast(<the model's device type>, dtype=torch.bfloat16)``: on a CPU with native bfloat16
    (AVX512-BF16 or AMX) the dense convolutions run in oneDNN's bfloat16 kernels, e.g. the real-data LiDAR detector's
    step at batch 2 in 0.21 s instead of 0.33 s on 2 cores. No loss scale: bfloat16 has float32's exponent range.
    Backward runs outside autocast (as torch recommends); parameters, gradients and optimiser state stay float32,
    so a checkpoint resumes under the plain ``OptimWrapper`` and the other way round."""

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        device = next((p.device.type for p in model.parameters()), "cpu")
        with super().optim_context(model), torch.autocast(device_type=device, dtype=torch.bfloat16):
            yield


def cpu_has_native_bfloat16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 / AMX); elsewhere it emulates it, slower
    than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _wrapper_type(optim_wrapper) -> str:
    kind = (optim_wrapper or {}).get("type", "")
    return kind.__name__ if isinstance(kind, type) else str(kind).split(".")[-1]


def _is_amp(optim_wrapper) -> bool:
    return _wrapper_type(optim_wrapper) == "AmpOptimWrapper"


def enable_amp(cfg: Config, dtype: str = "float16", cuda_available: bool = None) -> None:
    """Switch ``cfg.optim_wrapper`` to mixed precision: with a CUDA GPU, ``AmpOptimWrapper`` with autocast ``dtype``
    and a dynamic loss scale (kept when the config sets one); without one and ``dtype='bfloat16'``,
    :class:`BFloat16OptimWrapper` (CPU autocast). :func:`check_amp_option` checks the result when the Runner is
    built (float16 without a GPU stops there, saying what to do)."""
    cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if dtype == "bfloat16" and not cuda_available:
        cfg.optim_wrapper.type = "BFloat16OptimWrapper"
        for key in ("dtype", "loss_scale"):
            cfg.optim_wrapper.pop(key, None)
        return
    cfg.optim_wrapper.type = "AmpOptimWrapper"
    cfg.optim_wrapper.dtype = dtype
    cfg.optim_wrapper.setdefault("loss_scale", "dynamic")


def check_amp_option(cfg: Config, cuda_available: bool = None) -> None:
    """With ``optim_wrapper.type='AmpOptimWrapper'``: its ``dtype`` is float16 / bfloat16 (or unset, float16), a
    CUDA device is there and, for bfloat16, supports it. Raises ConfigError saying how to fix it; logs what runs
    in which precision. With ``BFloat16OptimWrapper`` on a CPU: logs it, and warns when the CPU has no native
    bfloat16 (then it is slower than float32). Other optimiser wrappers pass untouched."""
    optim_wrapper = cfg.get("optim_wrapper")
    cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if _wrapper_type(optim_wrapper) == "BFloat16OptimWrapper":
        if cuda_available:
            print_log("AMP: autocast bfloat16 (BFloat16OptimWrapper), losses float32, no loss scale", "current")
        elif cpu_has_native_bfloat16():
            print_log("AMP: autocast bfloat16 on the CPU (BFloat16OptimWrapper; oneDNN's native bfloat16 "
                      "convolutions, sparse convolutions and losses float32)", "current")
        else:
            print_log("AMP: autocast bfloat16 on a CPU without native bfloat16 (no AVX512-BF16 / AMX): it is "
                      "emulated and slower than float32; set optim_wrapper.type='OptimWrapper' to train in "
                      "float32", "current", level=logging.WARNING)
        return
    if not _is_amp(optim_wrapper):
        return
    dtype = optim_wrapper.get("dtype") or "float16"
    dtype = str(dtype).replace("torch.", "")
    if dtype not in AMP_DTYPES:
        raise ConfigError(f"optim_wrapper.dtype={optim_wrapper.get('dtype')!r}: AMP runs in one of "
                          f"{', '.join(AMP_DTYPES)} (float32 training: optim_wrapper.type='OptimWrapper')")
    if not cuda_available:
        raise ConfigError("optim_wrapper.type='AmpOptimWrapper' (--amp) trains under CUDA autocast and needs a CUDA "
                          "GPU; torch sees none here. On this machine train in float32 (leave out --amp, or set "
                          "optim_wrapper.type='OptimWrapper' with --cfg-options optim_wrapper.type=OptimWrapper), "
                          "or in bfloat16 on the CPU (--amp bfloat16, or optim_wrapper.type='BFloat16OptimWrapper')")
    if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"optim_wrapper.dtype='bfloat16': {torch.cuda.get_device_name()} has no bfloat16; use "
                          f"--amp float16")
    print_log(f"AMP: autocast {dtype} on CUDA (sparse convolutions float16, losses float32), loss scale "
              f"{optim_wrapper.get('loss_scale', 'dynamic')}", "current")
