from .augment import RandomRotScaleFlip
from .detection import (BEVAugment, LoadMultiViewImages, LoadPointsFromMultiSweeps, PackDetInputs,
                        PointsToDepthMaps)
from .distill import LoadFusedFeatures, LoadPosedFrames, LoadSuperpoints
from .formatting import PackPointInputs
from .image_seg import LoadImageWithTargets, PackImageSegInputs
from .loading import LoadAnnotations3D, LoadPointsFromFile
from .part_units import PackPartUnitsInputs, PartShapeAugment

__all__ = ["BEVAugment", "LoadMultiViewImages", "LoadPointsFromMultiSweeps", "PackDetInputs", "PointsToDepthMaps",
           "RandomRotScaleFlip", "LoadFusedFeatures", "LoadPosedFrames", "LoadSuperpoints", "PackPointInputs", "LoadAnnotations3D",
           "LoadPointsFromFile",
           "LoadImageWithTargets", "PackImageSegInputs", "PackPartUnitsInputs", "PartShapeAugment"]
