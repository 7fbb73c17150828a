"""Reference twin of BEV pooling: plain PyTorch, the CPU path, with a hand-written backward.

``out[cell] = sum over frustum points p in cell of depth[p] * context[pixel(p)]``. The context of a pixel is
shared by its D depth bins, so the twin walks the depth bins: for bin d it multiplies the ``[B*Ncam*h*w, C]``
context rows by that bin's depths and adds them into their cells. Forward and backward hold one
``[B*Ncam*h*w, C]`` temporary at a time; the ``[B, Ncam, D, h, w, C]`` frustum-feature tensor never exists.
"""
import torch


def _rows(context: torch.Tensor) -> torch.Tensor:
    """``[B*Ncam*h*w, C]`` channels-last rows of ``context [B, Ncam, C, h, w]``."""
    return context.permute(0, 1, 3, 4, 2).reshape(-1, context.shape[2])


def _cells(cell: torch.Tensor, num_cells: int) -> torch.Tensor:
    """Points outside the grid (-1) go to an extra row ``num_cells`` that is dropped."""
    return torch.where(cell < 0, torch.full_like(cell, num_cells), cell)


class BEVPoolTwin(torch.autograd.Function):
    """``(depth [B, Ncam, D, h, w], context [B, Ncam, C, h, w], cell [B, Ncam, D, h, w], num_cells)
    -> [num_cells, C]``."""

    @staticmethod
    def forward(ctx, depth, context, cell, num_cells):
        rows = _rows(context)
        cells = _cells(cell, num_cells)
        out = context.new_zeros(num_cells + 1, context.shape[2])
        for k in range(depth.shape[2]):
            out.index_add_(0, cells[:, :, k].reshape(-1), rows * depth[:, :, k].reshape(-1, 1))
        ctx.save_for_backward(depth, context, cells)
        return out[:num_cells]

    @staticmethod
    def backward(ctx, grad_out):
        depth, context, cells = ctx.saved_tensors
        rows = _rows(context)
        grad = torch.cat([grad_out, grad_out.new_zeros(1, grad_out.shape[1])])
        grad_depth = torch.empty_like(depth) if ctx.needs_input_grad[0] else None
        grad_rows = torch.zeros_like(rows) if ctx.needs_input_grad[1] else None
        for k in range(depth.shape[2]):
            g = grad.index_select(0, cells[:, :, k].reshape(-1))  # [B*Ncam*h*w, C]
            if grad_depth is not None:
                grad_depth[:, :, k] = (g * rows).sum(1).view(grad_depth[:, :, k].shape)
            if grad_rows is not None:
                grad_rows.addcmul_(g, depth[:, :, k].reshape(-1, 1))
        grad_context = None
        if grad_rows is not None:
            b, n, c, h, w = context.shape
            grad_context = grad_rows.view(b, n, h, w, c).permute(0, 1, 4, 2, 3)
        return grad_depth, grad_context, None, None


def bev_pool_reference(depth: torch.Tensor, context: torch.Tensor, cell: torch.Tensor, num_cells: int
                       ) -> torch.Tensor:
    """``depth [B, Ncam, D, h, w]``, ``context [B, Ncam, C, h, w]``, ``cell [B, Ncam, D, h, w]`` (-1 = out)
    -> ``[num_cells, C]``; differentiable in depth and context."""
    return BEVPoolTwin.apply(depth, context, cell, num_cells)
