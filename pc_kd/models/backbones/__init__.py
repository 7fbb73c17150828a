from .camera_bev import CameraBEVEncoder, ImageEncoder, LSSTransform
from .pillar_encoder import PillarBEVEncoder
from .sweep_motion import SweepMotion
from .second import SECOND
from .sparse_encoder import SparseEncoder8x
from .image_teachers import ModuleTeacher, TimmTeacher, TinySegNet, TorchvisionTeacher
from .espnetv2 import ESPNetV2Teacher
from .spconv_unet import SpconvUNet
from .point_tokens import CentrePositionEmbedding, MiniPointNetTokenizer
from .point_transformer import ReConBlock, ReConEncoder, TransformerBlock, TransformerEncoder
from .depth_vit import DepthViT, PromptedBlocks

__all__ = ["CameraBEVEncoder", "ImageEncoder", "LSSTransform", "PillarBEVEncoder", "SweepMotion", "SECOND", "SparseEncoder8x", "ModuleTeacher", "TimmTeacher", "TinySegNet", "TorchvisionTeacher", "ESPNetV2Teacher", "SpconvUNet",
           "CentrePositionEmbedding", "MiniPointNetTokenizer", "ReConBlock", "ReConEncoder",
           "TransformerBlock", "TransformerEncoder", "DepthViT", "PromptedBlocks"]
