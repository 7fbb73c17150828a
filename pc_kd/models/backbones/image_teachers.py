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


def load_weights(module: nn.Module, path: str, prefix: str = "") -> None:
    """Load a local state dict (optionally nested under ``state_dict`` and a key ``prefix``), strictly."""
    from pc_kd.engine.checkpoint import check_state_dict_matches, load_local_checkpoint

    ckpt = load_local_checkpoint(path, map_location="cpu")
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    check_state_dict_matches(module, state, path)
    module.load_state_dict(state)


class _FrozenTeacher(nn.Module):
    def __init__(self, stride: Optional[int] = None, fp16: bool = False,
                 mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225)):
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

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, H, W]`` RGB in 0..1 -> features ``[B, C, H / stride, W / stride]`` (float32)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{type(self).__name__}: images must be [B, 3, H, W] RGB in 0..1, got "
                             f"{tuple(images.shape)}")
        x = (images - self.mean) / self.std
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
        except ImportError as err:
            raise ImportError("TimmTeacher needs timm: pip install timm (weights: pass a local pretrained "
                              "file; pc_kd never downloads)") from err
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


@MODELS.register_module()
class TinySegNet(nn.Module):
    """A small fully-convolutional 2D segmentation net (stride 4 features) to train as a teacher in seconds.

    ``forward_features(x [B, 3, H, W]) -> [B, feat_channels, H / 4, W / 4]``; ``forward(x)`` -> class logits
    at full resolution.
    """

    def __init__(self, num_classes: int, feat_channels: int = 32, width: int = 32):
        super().__init__()

        def block(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                 nn.ReLU(inplace=True))

        self.body = nn.Sequential(block(3, width, 2), block(width, width, 1), block(width, 2 * width, 2),
                                  block(2 * width, 2 * width, 1), block(2 * width, 2 * width, 1))
        self.context = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, 1, 4, dilation=4, bias=False),
                                     nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True))
        self.embed = nn.Conv2d(4 * width, feat_channels, 1)
        self.classifier = nn.Conv2d(feat_channels, num_classes, 1)

    def forward_features(self, x):
        body = self.body(x)
        return self.embed(torch.cat([body, self.context(body)], 1))

    def forward(self, x):
        logits = self.classifier(F.relu(self.forward_features(x)))
        return F.interpolate(logits, size=x.shape[2:], mode="bilinear", align_corners=False)
