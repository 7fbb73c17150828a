"""Fused multi-view back-projection of 2D feature maps onto points (public entry:
:func:`pc_kd.projection.backproject_features`)."""
from .function import BackprojectFunction, choose_impl, triton_available
from .reference import sample_taps

__all__ = ["BackprojectFunction", "choose_impl", "triton_available", "sample_taps"]
