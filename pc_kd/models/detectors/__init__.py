"""BEV 3D detectors (LiDAR, camera, fusion) with a CenterPoint head."""
from .bev_detector import BEVDetector

__all__ = ["BEVDetector"]
