from .image_teachers import ModuleTeacher, TimmTeacher, TinySegNet, TorchvisionTeacher
from .spconv_unet import SpconvUNet

__all__ = ["ModuleTeacher", "TimmTeacher", "TinySegNet", "TorchvisionTeacher", "SpconvUNet"]
