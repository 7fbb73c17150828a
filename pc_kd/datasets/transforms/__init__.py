from .augment import RandomRotScaleFlip
from .distill import LoadFusedFeatures, LoadSuperpoints
from .formatting import PackPointInputs
from .loading import LoadAnnotations3D, LoadPointsFromFile

__all__ = ["RandomRotScaleFlip", "LoadFusedFeatures", "LoadSuperpoints", "PackPointInputs", "LoadAnnotations3D",
           "LoadPointsFromFile"]
