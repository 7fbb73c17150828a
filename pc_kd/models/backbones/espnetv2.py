"""ESPNetv2 semantic segmentation (Mehta et al., CVPR 2019) as a frozen 2D teacher, for the pretrained state dicts
of the EdgeNets model zoo (``espnetv2_s_<s>_<city|pascal>_<size>.pth``).

Structure (what the state dict's keys and shapes name; the parameter names are the model zoo's, so its files load
strictly):

* encoder ``base_net``: ``level1`` 3x3 conv stride 2 (+ BN + PReLU); ``level2_0``, ``level3_0``, ``level4_0``
  down-samplers (stride 2 each; strides 4, 8, 16), ``level3`` / ``level4`` stacks of EESP blocks. An EESP block
  reduces with a grouped 1x1 conv (4 groups) to ``n`` channels, runs 4 depth-wise 3x3 convs with dilations from
  its receptive-field limit, adds each branch to the previous one (hierarchical fusion), concatenates, BN + PReLU,
  expands with a grouped 1x1 conv (+ BN), adds the input when shapes agree, PReLU. A down-sampler concatenates a
  3x3 average pool (stride 2) of its input with a stride-2 EESP (no residual, no activation), adds a projection
  of the input image pooled to the same size ("input reinforcement"), PReLU.
* decoder: ``bu_dec_l1..l4`` efficient pyramid pooling (1x1 projection to ``p`` channels; depth-wise 3x3 convs
  at scales 2, 1.5, 1, 0.5, 0.1 of the map (at least 5 cells); BN + PReLU, a channel shuffle over the 5 scales,
  a grouped 3x3 conv back to ``p`` channels (+ BN + PReLU), a 1x1 conv to the output (+ BN + PReLU except in the
  last block, whose 1x1 conv is the classifier)); between them a x2 bilinear up-sampling
  (``align_corners=True``) plus the encoder's map at that stride (``merge_enc_dec_l2..l4``: a grouped 3x3
  conv + BN + PReLU gated by a sigmoid of its globally pooled input), BN + PReLU (``bu_br_l2..l4``).

Inputs: RGB in [0, 1], normalised with the ImageNet mean / std (done here). Outputs: :meth:`ESPNetV2Teacher.logits`
the class logits up-sampled bilinearly to the input size (the network's own output); ``forward`` the decoder's last
feature map, the ``p``-channel map (10 for these files) that the classifier (a 1x1 conv) reads, at stride 2 (or
resized to ``stride``), so fused features map linearly to fused logits.
"""
import math
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pc_kd.registry import MODELS

from .image_teachers import _FrozenTeacher

__all__ = ["ESPNetV2Teacher", "CITYSCAPES_CLASSES", "VOC_CLASSES", "ESPNETV2_WIDTHS"]

CITYSCAPES_CLASSES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                      "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle",
                      "bicycle", "background")
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "potted-plant", "sheep", "sofa", "train",
               "tv/monitor")
# encoder channels at strides 2, 4, 8, 16 per width s (the model zoo's scales)
ESPNETV2_WIDTHS = {0.5: (16, 32, 64, 128), 1.0: (32, 64, 128, 256), 1.25: (32, 80, 160, 320),
                   1.5: (32, 96, 192, 384), 2.0: (32, 128, 256, 512)}
_BRANCHES = 4
_RECEPTIVE_LIMITS = (13, 11, 9, 7)  # per level (2, 3, 4 and 4's repeated blocks), as the EESP blocks use them
_PYRAMID_SCALES = (2.0, 1.5, 1.0, 0.5, 0.1)


class _ConvBN(nn.Module):
    """conv (no bias) + BN (+ PReLU when ``act``); parameter names ``conv``, ``bn``, ``act``."""

    def __init__(self, cin, cout, k, stride=1, groups=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, bias=False, groups=groups)
        self.bn = nn.BatchNorm2d(cout)
        if act:
            self.act = nn.PReLU(cout)

    def forward(self, x):
        x = self.bn(self.conv(x))
        return self.act(x) if hasattr(self, "act") else x


class _BNAct(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bn, self.act = nn.BatchNorm2d(c), nn.PReLU(c)

    def forward(self, x):
        return self.act(self.bn(x))


class _DepthwiseDilated(nn.Module):
    def __init__(self, c, stride, dilation):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride, dilation, dilation=dilation, groups=c, bias=False)

    def forward(self, x):
        return self.conv(x)


def _dilations(receptive_limit: int) -> List[int]:
    """Dilation of each of the 4 branches: kernel sizes 3, 5, 7, 9 (a 3x3 at dilation 1..4), a size above the
    limit falls back to 3; sorted by size."""
    sizes = sorted(k if k <= receptive_limit else 3 for k in (3 + 2 * i for i in range(_BRANCHES)))
    return [(k - 1) // 2 for k in sizes]


class _EESP(nn.Module):
    def __init__(self, cin, cout, stride, receptive_limit):
        super().__init__()
        n = cout // _BRANCHES
        if n * _BRANCHES != cout:
            raise ValueError(f"ESPNetV2: an EESP block's {cout} output channels do not split into {_BRANCHES} branches")
        self.stride = stride
        self.proj_1x1 = _ConvBN(cin, n, 1, groups=_BRANCHES)
        self.spp_dw = nn.ModuleList(_DepthwiseDilated(n, stride, d) for d in _dilations(receptive_limit))
        self.conv_1x1_exp = _ConvBN(cout, cout, 1, groups=_BRANCHES, act=False)
        self.br_after_cat = _BNAct(cout)
        self.module_act = nn.PReLU(cout)  # unused in a down-sampler's block (the down-sampler activates)

    def forward(self, x):
        reduced = self.proj_1x1(x)
        branches = [self.spp_dw[0](reduced)]
        for conv in self.spp_dw[1:]:
            branches.append(conv(reduced) + branches[-1])
        out = self.conv_1x1_exp(self.br_after_cat(torch.cat(branches, 1)))
        if self.stride == 2:
            return out
        if out.shape == x.shape:
            out = out + x
        return self.module_act(out)


class _DownSampler(nn.Module):
    def __init__(self, cin, cout, receptive_limit):
        super().__init__()
        self.eesp = _EESP(cin, cout - cin, 2, receptive_limit)
        self.avg = nn.AvgPool2d(3, 2, 1)
        self.inp_reinf = nn.Sequential(_ConvBN(3, 3, 3), _ConvBN(3, cout, 1, act=False))
        self.act = nn.PReLU(cout)

    def forward(self, x, image):
        pooled = self.avg(x)
        out = torch.cat([pooled, self.eesp(x)], 1)
        small = image
        while small.shape[-2:] != pooled.shape[-2:]:
            if small.shape[-2] < pooled.shape[-2] or small.shape[-1] < pooled.shape[-1]:
                raise RuntimeError(f"ESPNetV2: the image pyramid skipped the size {tuple(pooled.shape[-2:])}")
            small = F.avg_pool2d(small, 3, 2, 1)
        return self.act(out + self.inp_reinf(small))


class _Encoder(nn.Module):
    def __init__(self, channels: Sequence[int], blocks3: int, blocks4: int):
        super().__init__()
        c1, c2, c3, c4 = channels
        self.level1 = _ConvBN(3, c1, 3, 2)
        self.level2_0 = _DownSampler(c1, c2, _RECEPTIVE_LIMITS[0])
        self.level3_0 = _DownSampler(c2, c3, _RECEPTIVE_LIMITS[1])
        self.level3 = nn.ModuleList(_EESP(c3, c3, 1, _RECEPTIVE_LIMITS[2]) for _ in range(blocks3))
        self.level4_0 = _DownSampler(c3, c4, _RECEPTIVE_LIMITS[2])
        self.level4 = nn.ModuleList(_EESP(c4, c4, 1, _RECEPTIVE_LIMITS[3]) for _ in range(blocks4))

    def forward(self, image):
        """Maps at strides 2, 4, 8, 16."""
        s2 = self.level1(image)
        s4 = self.level2_0(s2, image)
        s8 = self.level3_0(s4, image)
        for block in self.level3:
            s8 = block(s8)
        s16 = self.level4_0(s8, image)
        for block in self.level4:
            s16 = block(s16)
        return s2, s4, s8, s16


class _SeqConvBNAct(nn.Module):
    """conv (no bias) + BN + PReLU as ``cbr.0``, ``cbr.1``, ``cbr.2`` (the decoder's naming)."""

    def __init__(self, cin, cout, k, groups=1):
        super().__init__()
        self.cbr = nn.Sequential(nn.Conv2d(cin, cout, k, 1, (k - 1) // 2, bias=False, groups=groups),
                                 nn.BatchNorm2d(cout), nn.PReLU(cout))

    def forward(self, x):
        return self.cbr(x)


class _SeqBNAct(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.br = nn.Sequential(nn.BatchNorm2d(c), nn.PReLU(c))

    def forward(self, x):
        return self.br(x)


class _ChannelShuffle(nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        b, c, h, w = x.shape
        return x.view(b, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class _PyramidPool(nn.Module):
    def __init__(self, cin, proj, cout, last: bool = False):
        super().__init__()
        n = len(_PYRAMID_SCALES)
        self.projection_layer = _SeqConvBNAct(cin, proj, 1)
        self.stages = nn.ModuleList(nn.Conv2d(proj, proj, 3, 1, 1, bias=False, groups=proj) for _ in range(n))
        self.merge_layer = nn.Sequential(_SeqBNAct(proj * n), _ChannelShuffle(n),
                                         _SeqConvBNAct(proj * n, proj, 3, groups=proj),
                                         nn.Conv2d(proj, cout, 1, bias=last))
        self.last = last
        if not last:
            self.br = _SeqBNAct(cout)

    def merged(self, x):
        """The ``proj``-channel map that the last 1x1 conv reads."""
        x = self.projection_layer(x)
        h, w = x.shape[-2:]
        outs = []
        for scale, stage in zip(_PYRAMID_SCALES, self.stages):
            size = (max(5, math.ceil(h * scale)), max(5, math.ceil(w * scale)))
            if scale < 1.0:
                y = F.interpolate(stage(F.adaptive_avg_pool2d(x, size)), (h, w), mode="bilinear", align_corners=True)
            elif scale > 1.0:
                y = F.adaptive_avg_pool2d(stage(F.interpolate(x, size, mode="bilinear", align_corners=True)), (h, w))
            else:
                y = stage(x)
            outs.append(y)
        return self.merge_layer[:3](torch.cat(outs, 1))

    def forward(self, x):
        out = self.merge_layer[3](self.merged(x))
        return out if self.last else self.br(out)


class _GatedProjection(nn.Module):
    """An encoder map into the decoder: grouped 3x3 conv + BN + PReLU, times a sigmoid gate from its global mean."""

    def __init__(self, cin, cout):
        super().__init__()
        self.wt_layer = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.Sigmoid())
        self.expansion_layer = _SeqConvBNAct(cin, cout, 3, groups=math.gcd(cin, cout))

    def forward(self, x):
        return self.expansion_layer(x) * self.wt_layer(x)


def _up_to(x, ref):
    return F.interpolate(x, size=ref.shape[-2:], mode="bilinear", align_corners=True)


class ESPNetV2Segmentation(nn.Module):
    """The network: ``forward(x [B, 3, H, W] normalised) -> (features [B, p, ~H/2, ~W/2], logits [B, classes, H,
    W])``. ``channels``: the encoder's at strides 2, 4, 8, 16; ``decoder_base``: 16 (``dec_planes`` 64, 48, 32)."""

    def __init__(self, num_classes: int, channels: Sequence[int], blocks3: int = 3, blocks4: int = 7,
                 decoder_base: int = 16, proj: Optional[int] = None):
        super().__init__()
        proj = proj or min(num_classes // 2, decoder_base)
        d1, d2, d3 = 4 * decoder_base, 3 * decoder_base, 2 * decoder_base
        self.base_net = _Encoder(channels, blocks3, blocks4)
        c1, c2, c3, c4 = channels
        self.bu_dec_l1 = _PyramidPool(c4, proj, d1)
        self.bu_dec_l2 = _PyramidPool(d1, proj, d2)
        self.bu_dec_l3 = _PyramidPool(d2, proj, d3)
        self.bu_dec_l4 = _PyramidPool(d3, proj, num_classes, last=True)
        self.merge_enc_dec_l2 = _GatedProjection(c3, d1)
        self.merge_enc_dec_l3 = _GatedProjection(c2, d2)
        self.merge_enc_dec_l4 = _GatedProjection(c1, d3)
        self.bu_br_l2 = nn.Sequential(nn.BatchNorm2d(d1), nn.PReLU(d1))
        self.bu_br_l3 = nn.Sequential(nn.BatchNorm2d(d2), nn.PReLU(d2))
        self.bu_br_l4 = nn.Sequential(nn.BatchNorm2d(d3), nn.PReLU(d3))

    def forward(self, x):
        s2, s4, s8, s16 = self.base_net(x)
        y = self.bu_dec_l1(s16)
        y = self.bu_dec_l2(self.bu_br_l2(_up_to(y, s8) + self.merge_enc_dec_l2(s8)))
        y = self.bu_dec_l3(self.bu_br_l3(_up_to(y, s4) + self.merge_enc_dec_l3(s4)))
        features = self.bu_dec_l4.merged(self.bu_br_l4(_up_to(y, s2) + self.merge_enc_dec_l4(s2)))
        logits = self.bu_dec_l4.merge_layer[3](features)
        return features, F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=True)


def describe_state_dict(state) -> dict:
    """What an ESPNetv2 segmentation state dict holds: ``channels`` (encoder, strides 2..16), ``width`` (the model
    zoo's s, or None), ``num_classes``, ``blocks3`` / ``blocks4``, ``decoder_base``, ``proj``."""
    def shape(key):
        if key not in state:
            raise KeyError(key)
        return tuple(state[key].shape)

    channels = (shape("base_net.level1.conv.weight")[0], shape("base_net.level2_0.act.weight")[0],
                shape("base_net.level3_0.act.weight")[0], shape("base_net.level4_0.act.weight")[0])
    count = lambda level: len({k.split(".")[2] for k in state if k.startswith(f"base_net.{level}.")})  # noqa: E731
    width = next((s for s, c in ESPNETV2_WIDTHS.items() if tuple(c) == channels), None)
    return dict(channels=channels, width=width, num_classes=shape("bu_dec_l4.merge_layer.3.weight")[0],
                blocks3=count("level3"), blocks4=count("level4"),
                decoder_base=shape("bu_dec_l1.merge_layer.3.weight")[0] // 4,
                proj=shape("bu_dec_l1.projection_layer.cbr.0.weight")[0])


def _looks_like(info: dict) -> str:
    s = f"s = {info['width']}" if info["width"] is not None else f"encoder channels {info['channels']}"
    task = {20: " (Cityscapes' 19 classes + background)", 21: " (PASCAL VOC)"}.get(info["num_classes"], "")
    return f"{s} with {info['num_classes']} classes{task}"


@MODELS.register_module()
class ESPNetV2Teacher(_FrozenTeacher):
    """A frozen ESPNetv2 segmentation network from a local model-zoo state dict.

    ``ESPNetV2Teacher(weights=PATH)``: width and class count are read from the weights; ``width`` / ``num_classes``
    when given must match them (the error names the mismatched keys and shapes and what the file looks like).
    ``class_names``: the Cityscapes names for 20 outputs, PASCAL VOC's for 21, else pass them.

    * ``logits(images [B, 3, H, W] RGB in [0, 1])`` -> ``[B, classes, H, W]`` (float32, at the input size);
    * ``forward(images)`` -> the decoder's last feature map ``[B, p, H / 2, W / 2]`` (``p`` = 10 for the zoo's
      files; the classifier is a 1x1 conv on it), resized to ``H / stride`` when ``stride`` is given;
    * ``classify(features)`` applies that 1x1 conv (to fused features, e.g. ``[N, p]`` or ``[B, p, h, w]``).

    ``input_scale``: the images are resized by this factor (bilinear, antialiased) before the network, e.g. 0.5
    for ScanNet's 1296 x 968 frames (the VOC network was trained at 384 x 384); outputs keep their stated sizes
    relative to the images given (logits at the input size; features at ``2 / input_scale``).
    """

    def __init__(self, weights: str, width: Optional[float] = None, num_classes: Optional[int] = None,
                 class_names: Optional[Sequence[str]] = None, stride: Optional[int] = None, fp16: bool = False,
                 input_scale: float = 1.0):
        super().__init__(stride, fp16)
        if not 0 < input_scale <= 4:
            raise ValueError(f"ESPNetV2Teacher: input_scale must be in (0, 4], got {input_scale}")
        self.input_scale = float(input_scale)
        from pc_kd.engine.checkpoint import load_local_checkpoint

        state = load_local_checkpoint(str(weights), map_location="cpu")
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        try:
            info = describe_state_dict(state)
        except KeyError as err:
            raise ValueError(f"ESPNetV2Teacher: {weights} is not an ESPNetv2 segmentation state dict (no key "
                             f"{err.args[0]!r}; keys start {list(state)[:3]})") from None
        want_channels = ESPNETV2_WIDTHS.get(width) if width is not None else info["channels"]
        if width is not None and want_channels is None:
            raise ValueError(f"ESPNetV2Teacher: width {width} is not one of {sorted(ESPNETV2_WIDTHS)}")
        want_classes = num_classes if num_classes is not None else info["num_classes"]
        self.model = ESPNetV2Segmentation(want_classes, want_channels, info["blocks3"], info["blocks4"],
                                          info["decoder_base"], info["proj"] if num_classes is None else None)
        own = self.model.state_dict()
        bad = [f"{k}: file {tuple(v.shape)}, model {tuple(own[k].shape)}" for k, v in state.items()
               if k in own and tuple(v.shape) != tuple(own[k].shape)]
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if bad or missing or unexpected:
            asked = (f"s = {width}" if width is not None else "its width") + (
                f", {num_classes} classes" if num_classes is not None else "")
            raise ValueError(
                f"ESPNetV2Teacher: {weights} does not fit an ESPNetv2 of {asked}: it looks like {_looks_like(info)}. "
                + (f"{len(bad)} shapes differ, e.g. {bad[:3]}. " if bad else "")
                + (f"Missing keys {missing[:3]}. " if missing else "")
                + (f"Unexpected keys {unexpected[:3]}. " if unexpected else "")
                + "Drop width / num_classes to take them from the file, or pass the matching weights.")
        self.model.load_state_dict(state, strict=True)
        self.info = info
        if class_names is None:
            class_names = {20: CITYSCAPES_CLASSES, 21: VOC_CLASSES}.get(info["num_classes"])
            if class_names is None:
                raise ValueError(f"ESPNetV2Teacher: {weights} has {info['num_classes']} outputs; pass class_names "
                                 "(Cityscapes has 20 with background, PASCAL VOC 21)")
        if len(class_names) != info["num_classes"]:
            raise ValueError(f"ESPNetV2Teacher: {len(class_names)} class_names for {info['num_classes']} outputs "
                             f"in {weights}")
        self.class_names = list(class_names)
        self.feat_channels = info["proj"]
        self.freeze()

    def _scaled(self, x):
        if self.input_scale == 1.0:
            return x
        size = (max(16, round(x.shape[2] * self.input_scale)), max(16, round(x.shape[3] * self.input_scale)))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)

    def features(self, x):
        return self.model(self._scaled(x))[0]

    @torch.no_grad()
    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, H, W]`` RGB in 0..1 -> class logits ``[B, classes, H, W]`` (float32)."""
        logits = self.model(self._scaled(self.normalised(images.float())))[1].float()
        if logits.shape[-2:] != images.shape[-2:]:
            logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return logits

    @torch.no_grad()
    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """The classifier on features ``[..., p]`` (channels last, e.g. fused point features ``[N, p]``) or
        ``[B, p, h, w]``: logits with ``classes`` channels in the same layout."""
        conv = self.model.bu_dec_l4.merge_layer[3]
        if features.ndim == 4 and features.shape[1] == self.feat_channels:
            return conv(features.float())
        weight = conv.weight.view(conv.weight.shape[0], -1)
        return features.float() @ weight.T + conv.bias
