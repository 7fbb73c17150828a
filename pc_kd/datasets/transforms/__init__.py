from .augment import RandomRotScaleFlip
from .formatting import PackPointInputs
from .loading import LoadAnnotations3D, LoadPointsFromFile

__all__ = ["RandomRotScaleFlip", "PackPointInputs", "LoadAnnotations3D", "LoadPointsFromFile"]
