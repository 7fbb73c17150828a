from .augment import RandomRotScaleFlip
from .distill import LoadFusedFeatures, LoadPosedFrames, LoadSuperpoints
from .formatting import PackPointInputs
from .loading import LoadAnnotations3D, LoadPointsFromFile

__all__ = ["RandomRotScaleFlip", "LoadFusedFeatures", "LoadPosedFrames", "LoadSuperpoints", "PackPointInputs", "LoadAnnotations3D",
           "LoadPointsFromFile"]
