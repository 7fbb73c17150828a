"""Mixed-precision training with mmengine's ``AmpOptimWrapper``: turning it on, and refusing what cannot work.

A config turns AMP on with ``optim_wrapper = dict(type="AmpOptimWrapper", dtype="float16" | "bfloat16",
loss_scale="dynamic", optimizer=...)``; ``tools/train.py --amp [float16|bfloat16]`` does the same to any config.
The forward pass then runs under CUDA autocast: dense convolutions and linear layers in the chosen precision,
spconv's sparse convolutions in float16 whatever it is (spconv casts their inputs itself), losses in float32
(:func:`pc_kd.utils.precision.float32_loss`), parameters and optimiser state in float32. mmengine's wrapper needs a
CUDA device; on a machine without one :func:`check_amp_option` stops with what to do instead.
"""
import torch
from mmengine.config import Config
from mmengine.logging import print_log

from .config_checks import ConfigError

AMP_DTYPES = ("float16", "bfloat16")


def _is_amp(optim_wrapper) -> bool:
    return str((optim_wrapper or {}).get("type", "")).split(".")[-1] == "AmpOptimWrapper"


def enable_amp(cfg: Config, dtype: str = "float16") -> None:
    """Switch ``cfg.optim_wrapper`` to ``AmpOptimWrapper`` with autocast ``dtype`` and a dynamic loss scale
    (kept when the config sets one); :func:`check_amp_option` checks the result when the Runner is built."""
    cfg.optim_wrapper.type = "AmpOptimWrapper"
    cfg.optim_wrapper.dtype = dtype
    cfg.optim_wrapper.setdefault("loss_scale", "dynamic")


def check_amp_option(cfg: Config, cuda_available: bool = None) -> None:
    """With ``optim_wrapper.type='AmpOptimWrapper'``: its ``dtype`` is float16 / bfloat16 (or unset, float16), a
    CUDA device is there and, for bfloat16, supports it. Raises ConfigError saying how to fix it; logs what runs
    in which precision. Other optimiser wrappers pass untouched."""
    optim_wrapper = cfg.get("optim_wrapper")
    if not _is_amp(optim_wrapper):
        return
    dtype = optim_wrapper.get("dtype") or "float16"
    dtype = str(dtype).replace("torch.", "")
    if dtype not in AMP_DTYPES:
        raise ConfigError(f"optim_wrapper.dtype={optim_wrapper.get('dtype')!r}: AMP runs in one of "
                          f"{', '.join(AMP_DTYPES)} (float32 training: optim_wrapper.type='OptimWrapper')")
    cuda_available = torch.cuda.is_available() if cuda_available is None else cuda_available
    if not cuda_available:
        raise ConfigError("optim_wrapper.type='AmpOptimWrapper' (--amp) trains under CUDA autocast and needs a CUDA "
                          "GPU; torch sees none here. Train in float32 on this machine: leave out --amp, or set "
                          "optim_wrapper.type='OptimWrapper' (--cfg-options optim_wrapper.type=OptimWrapper)")
    if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"optim_wrapper.dtype='bfloat16': {torch.cuda.get_device_name()} has no bfloat16; use "
                          f"--amp float16")
    print_log(f"AMP: autocast {dtype} on CUDA (sparse convolutions float16, losses float32), loss scale "
              f"{optim_wrapper.get('loss_scale', 'dynamic')}", "current")
