from .spconv_unet import SpconvUNet

__all__ = ["SpconvUNet"]
