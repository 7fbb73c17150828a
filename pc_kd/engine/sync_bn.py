"""SyncBN for processes without GPUs: torch's ``SyncBatchNorm`` refuses CPU tensors, so CPU runs under torchrun
(gloo) replace it by :class:`ProcessGroupBatchNorm`, which gathers the batch statistics with differentiable
all-reduces over any backend."""
from typing import Tuple

import torch
import torch.distributed as dist
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
from torch import nn

from pc_kd.registry import MODEL_WRAPPERS

from .config_checks import ConfigError


class _AllReduceSum(torch.autograd.Function):
    """Sum over the processes; the gradient of every process's input is the sum of the processes' output
    gradients (each process's loss depends on the sum)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        out = x.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


def _all_reduce_sum(x: torch.Tensor) -> torch.Tensor:
    return _AllReduceSum.apply(x)


class ProcessGroupBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over channel dim 1 of ``[N, C]``, ``[N, C, L]``, ``[N, C, H, W]``, ... whose training statistics are
    those of the batch of all processes together (what one process would compute on the concatenated batch; a
    process may hold no samples). Same parameters and buffers as ``nn.BatchNorm*d``; in eval mode, or with one
    process, it is plain BatchNorm. Mean and variance are two passes of all-reduce (sum and count, then the sum of
    squared deviations), so the variance does not lose digits to ``E[x^2] - E[x]^2``."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"ProcessGroupBatchNorm: input {tuple(x.shape)}, expected [N, C, ...]")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = [0] + list(range(2, x.dim()))
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = x.new_tensor([x.numel() / max(x.shape[1], 1)])
        totals = _all_reduce_sum(torch.cat([x.sum(dims), count]))
        n = totals[-1]
        if n < 2:
            raise ValueError(f"ProcessGroupBatchNorm: {int(n)} value(s) per channel over all processes; batch "
                             "statistics need at least 2")
        mean = totals[:-1] / n
        centred = x - mean.view(shape)
        var = _all_reduce_sum((centred * centred).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                self.running_var.mul_(1 - momentum).add_(momentum * var.detach() * n / (n - 1))
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def to_process_group_batchnorm(module: nn.Module) -> Tuple[nn.Module, int]:
    """Replace every ``nn.SyncBatchNorm`` in ``module`` (what mmengine's ``sync_bn='torch'`` converts BatchNorm to)
    by a :class:`ProcessGroupBatchNorm` with the same parameters and buffers; returns the module and the count."""
    if isinstance(module, nn.SyncBatchNorm):
        new = ProcessGroupBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                    module.track_running_stats)
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new, 1
    count = 0
    for name, child in module.named_children():
        new, n = to_process_group_batchnorm(child)
        if new is not child:
            setattr(module, name, new)
        count += n
    return module, count


@MODEL_WRAPPERS.register_module()
class CpuDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper for processes without a GPU (gloo): no device ids, and the ``nn.SyncBatchNorm`` layers
    that a config's ``sync_bn='torch'`` made become :class:`ProcessGroupBatchNorm` (torch's needs CUDA)."""

    def __init__(self, module: nn.Module, **kwargs):
        module, count = to_process_group_batchnorm(module)
        if count:
            print_log(f"SyncBN: {count} BatchNorm layers share their batch statistics across the "
                      f"{dist.get_world_size()} processes (ProcessGroupBatchNorm, CPU)", "current")
        kwargs["device_ids"] = None
        super().__init__(module=module, **kwargs)


def check_sync_bn_option(value) -> None:
    """``sync_bn`` of a config: None or 'torch' (mmcv's implementation is not installed with pc_kd)."""
    if value not in (None, "torch"):
        raise ConfigError(f"sync_bn={value!r}: use sync_bn='torch' (BatchNorm -> SyncBatchNorm when training with "
                         "several processes; on CPU processes pc_kd's ProcessGroupBatchNorm) or leave it unset")

