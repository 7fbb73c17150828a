"""Info-file converters from the official dataset layouts (used by tools/create_infos.py)."""
from .nuscenes import create_nuscenes_infos, create_nuscenes_split_infos
from .s3dis import create_s3dis_infos
from .scannet import create_scannet_infos

__all__ = ["create_nuscenes_infos", "create_nuscenes_split_infos", "create_s3dis_infos", "create_scannet_infos"]
