"""Frozen 2D teachers: any image model that returns a feature map ``[B, C, h, w]``.

* :class:`ModuleTeacher` wraps a registered pc_kd module (e.g. :class:`TinySegNet`) or any ``nn.Module``.
* :class:`TimmTeacher` wraps a timm model with ``features_only`` (timm is optional: ``pip install timm``).
* :class:`TorchvisionTeacher` wraps a torchvision model's feature trunk (optional).

Teachers are frozen (``requires_grad=False``), stay in eval mode whatever ``train()`` asks, may run in fp16,
resize their output to a requested stride, and load weights only from a local file
(``torch.load(weights_only=True)``); nothing is downloaded.
"""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pc_kd.registry import MODELS
from pc_kd.utils.dependencies import timm_missing
from pc_kd.utils.image import IMAGENET_MEAN, IMAGENET_STD


def load_weights(module: nn.Module, path: str, prefix: str = "") -> None:
    """Load a local state dict (optionally nested under ``state_dict`` and a key ``prefix``), strictly."""
    from pc_kd.engine.checkpoint import check_state_dict_matches, load_local_checkpoint

    ckpt = load_local_checkpoint(path, map_location="cpu")
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    check_state_dict_matches(module, state, path)
    module.load_state_dict(state)


# ImageNet statistics: the input normalisation of every pc_kd teacher (and of TinySegNet's training)


class _FrozenTeacher(nn.Module):
    def __init__(self, stride: Optional[int] = None, fp16: bool = False,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
        super().__init__()
        self.stride, self.fp16 = stride, fp16
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def freeze(self):
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True):
        return super().train(False)  # a teacher stays in eval mode

    def normalised(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, H, W]`` RGB in 0..1, checked, normalised with the teacher's mean / std."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{type(self).__name__}: images must be [B, 3, H, W] RGB in 0..1, got "
                             f"{tuple(images.shape)}")
        return (images - self.mean) / self.std

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, H, W]`` RGB in 0..1 -> features ``[B, C, H / stride, W / stride]`` (float32)."""
        x = self.normalised(images)
        with torch.autocast(device_type=x.device.type, dtype=torch.float16, enabled=self.fp16 and x.is_cuda):
            feats = self.features(x)
        if feats.ndim != 4:
            raise ValueError(f"{type(self).__name__}: the image model returned a tensor of rank {feats.ndim} "
                             f"({tuple(feats.shape)}); a teacher must return a [B, C, h, w] feature map")
        if self.stride:
            size = (images.shape[2] // self.stride, images.shape[3] // self.stride)
            if tuple(feats.shape[2:]) != size:
                feats = F.interpolate(feats.float(), size=size, mode="bilinear", align_corners=False)
        return feats.float()


@MODELS.register_module()
class ModuleTeacher(_FrozenTeacher):
    """A frozen teacher around ``model`` (a config dict of a registered module, or an ``nn.Module``) whose
    ``forward_features(x)`` (or ``forward(x)``) returns ``[B, C, h, w]``; ``pretrained``: local weights."""

    def __init__(self, model, pretrained: Optional[str] = None, stride: Optional[int] = None, fp16: bool = False,
                 **norm):
        super().__init__(stride, fp16, **norm)
        self.model = MODELS.build(model) if isinstance(model, dict) else model
        if pretrained:
            load_weights(self.model, pretrained)
        self.freeze()

    def features(self, x):
        fn = getattr(self.model, "forward_features", None)
        return fn(x) if fn is not None else self.model(x)


@MODELS.register_module()
class TimmTeacher(_FrozenTeacher):
    """timm model with ``features_only=True``; ``out_index`` picks the feature level."""

    def __init__(self, name: str, out_index: int = -1, pretrained: Optional[str] = None,
                 stride: Optional[int] = None, fp16: bool = False, **norm):
        super().__init__(stride, fp16, **norm)
        try:
            import timm
        except ImportError:
            raise timm_missing("TimmTeacher (weights: a local pretrained file; pc_kd never downloads)") from None
        self.model = timm.create_model(name, pretrained=False, features_only=True)
        self.out_index = out_index
        if pretrained:
            load_weights(self.model, pretrained)
        self.freeze()

    def features(self, x):
        return self.model(x)[self.out_index]


@MODELS.register_module()
class TorchvisionTeacher(_FrozenTeacher):
    """A torchvision classification model cut before its pooling (``name`` e.g. ``resnet18``)."""

    def __init__(self, name: str, pretrained: Optional[str] = None, stride: Optional[int] = None,
                 fp16: bool = False, **norm):
        super().__init__(stride, fp16, **norm)
        try:
            import torchvision
        except ImportError as err:
            raise ImportError("TorchvisionTeacher needs torchvision installed beside your torch") from err
        net = getattr(torchvision.models, name)(weights=None)
        if pretrained:
            load_weights(net, pretrained)
        self.model = nn.Sequential(*list(net.children())[:-2])
        self.freeze()

    def features(self, x):
        return self.model(x)


def _conv_bn_relu(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@MODELS.register_module()
class TinySegNet(nn.Module):
    """A small fully-convolutional 2D segmentation net to train as a teacher in about a minute on a CPU.

    Stages at strides 4, 8 and 16 (the last with dilated convolutions) and a whole-image pooling branch are
    upsampled to stride 4 and fused, so each feature sees most of a 120 x 160 frame (what tells a bed from a
    table without colour cues). ``forward_features(x [B, 3, H, W]) -> [B, feat_channels, H / 4, W / 4]``;
    ``forward(x)`` -> class logits at full resolution. The classifier is a cosine one (``scale x cos(feature,
    class weight)``), as image-text teachers such as LSeg or OpenSeg compare pixel embeddings with class
    embeddings: classes differ by the direction of a feature, which is what cosine losses and cosine k-means
    downstream compare.
    """

    def __init__(self, num_classes: int, feat_channels: int = 32, width: int = 24, scale: float = 15.0):
        super().__init__()
        self.scale = scale
        w = width
        self.stride4 = nn.Sequential(_conv_bn_relu(3, w, 2), _conv_bn_relu(w, 2 * w, 2), _conv_bn_relu(2 * w, 2 * w))
        self.stride8 = nn.Sequential(_conv_bn_relu(2 * w, 3 * w, 2), _conv_bn_relu(3 * w, 3 * w))
        self.stride16 = nn.Sequential(_conv_bn_relu(3 * w, 4 * w, 2), _conv_bn_relu(4 * w, 4 * w),
                                      _conv_bn_relu(4 * w, 4 * w, dilation=2), _conv_bn_relu(4 * w, 4 * w, dilation=4))
        self.image_pool = nn.Sequential(nn.Conv2d(4 * w, w, 1), nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(nn.Conv2d(10 * w, 2 * w, 1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
                                  _conv_bn_relu(2 * w, 2 * w))
        self.embed = nn.Conv2d(2 * w, feat_channels, 1)
        self.classifier = nn.Conv2d(feat_channels, num_classes, 1, bias=False)

    def forward_features(self, x):
        s4 = self.stride4(x)
        s8 = self.stride8(s4)
        s16 = self.stride16(s8)
        size = s4.shape[2:]
        pooled = self.image_pool(s16.mean((2, 3), keepdim=True)).expand(-1, -1, *size)
        up = [F.interpolate(t, size=size, mode="bilinear", align_corners=False) for t in (s8, s16)]
        return self.embed(self.fuse(torch.cat([s4, *up, pooled], 1)))

    def forward(self, x):
        weight = F.normalize(self.classifier.weight, dim=1)
        logits = self.scale * F.conv2d(F.normalize(self.forward_features(x), dim=1), weight)
        return F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)
