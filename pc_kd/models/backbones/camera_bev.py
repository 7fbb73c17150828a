"""Camera -> BEV: an image encoder and the lift-splat-shoot view transform on ``pc_kd.ops.bev_pool`` with
BEVDepth's LiDAR depth supervision."""
from typing import Dict, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from pc_kd.ops import BEVGrid, bev_pool
from pc_kd.registry import MODELS
from pc_kd.utils.precision import float32_loss


def _conv(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Bottleneck(nn.Module):
    """ResNet bottleneck (1x1, 3x3 stride, 1x1 with expansion 4), parameter names as torchvision's."""

    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * 4
        self.conv1, self.bn1 = nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


@MODELS.register_module()
class ImageEncoder(nn.Module):
    """Images ``[N, 3, H, W]`` (normalised) -> features ``[N, out_channels, H / stride, W / stride]``.

    ``arch='resnet50'``: ResNet-50 stages 1-3 (stride 16, parameter names as torchvision's, so its ImageNet
    weights load with ``pretrained=<path to a torchvision state dict>``) and a 1x1 reduction; ``arch='small'``:
    a plain conv stack for CPU runs (``widths``, one stride-2 conv per entry).
    """

    def __init__(self, arch: str = "small", out_channels: int = 64, widths: Sequence[int] = (32, 48, 64),
                 pretrained: Optional[str] = None):
        super().__init__()
        self.arch = arch
        if arch == "small":
            layers, cin = [], 3
            for w in widths:
                layers += [_conv(cin, w, 2), _conv(w, w)]
                cin = w
            self.body = nn.Sequential(*layers)
            self.stride = 2 ** len(widths)
        elif arch == "resnet50":
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin, stages = 64, []
            for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2)):
                stages.append(nn.Sequential(*[_Bottleneck(cin if i == 0 else width * 4, width, stride if i == 0 else 1)
                                              for i in range(blocks)]))
                cin = width * 4
            self.layer1, self.layer2, self.layer3 = stages
            self.body = None
            self.stride = 16
            if pretrained:
                state = torch.load(pretrained, map_location="cpu", weights_only=True)
                missing, _ = self.load_state_dict(state, strict=False)
                if any(k.startswith(("conv1", "bn1", "layer1", "layer2", "layer3")) for k in missing):
                    raise ValueError(f"ImageEncoder: {pretrained} lacks ResNet-50 keys, e.g. {missing[:3]}")
        else:
            raise ValueError(f"ImageEncoder: arch must be 'small' or 'resnet50', got {arch!r}")
        self.reduce = nn.Conv2d(cin, out_channels, 1)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.body is not None:
            x = self.body(x)
        else:
            x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
            x = self.layer3(self.layer2(self.layer1(x)))
        return self.reduce(x)


@MODELS.register_module()
class LSSTransform(nn.Module):
    """Lift-splat: image features ``[B, V, C_in, h, w]`` -> per pixel a depth distribution over ``depth_bins``
    and a context vector -> BEV ``[B, out_channels, H, W]`` by :func:`pc_kd.ops.bev_pool`.

    Frustum point of feature pixel (i, j) at bin k: image point ``((j + 0.5) s, (i + 0.5) s)`` at depth
    ``d_k = start + k * step`` (s = ``stride``), mapped by ``inv(lidar2img)`` into the LiDAR frame, then by the
    sample's ``bev_aug_matrix`` into the (augmented) BEV frame.

    Depth loss (BEVDepth): the target of a feature pixel is the smallest LiDAR depth in its s x s image patch
    (``depth_maps``, 0 = none), one-hot over the bins; binary cross-entropy on the pixels with a target in range,
    summed over bins, / max(1, #pixels), x ``depth_loss_weight`` (3).

    Ray encoding (``ray_encoding=True``): the depth net also reads, per feature pixel, the unit direction of its
    ray and the height of its camera's centre, both in the LiDAR frame (4 channels, from ``lidar2img``), so that
    the ground's depth along a ray (camera height / how steeply the ray points down) and the rig's geometry are
    inputs rather than something the image features must carry (PETR-style ray coordinates; BEVDepth feeds the
    camera parameters to its depth net for the same reason).

    Args:
        depth_bins: ``(start, stop, step)`` metres.
        grid: the BEV grid (``BEVGrid`` fields: x_range, y_range, z_range, cell).
        ray_encoding: concatenate the 4 ray channels to the depth net's input.
    """

    def __init__(self, in_channels: int, out_channels: int, depth_bins: Sequence[float], grid: dict, stride: int,
                 depth_loss_weight: float = 3.0, ray_encoding: bool = False):
        super().__init__()
        self.start, self.stop, self.step = (float(v) for v in depth_bins)
        self.num_bins = int(round((self.stop - self.start) / self.step))
        self.grid = BEVGrid.from_any(grid)
        self.stride, self.out_channels, self.depth_loss_weight = stride, out_channels, depth_loss_weight
        self.ray_encoding = ray_encoding
        self.depth_net = nn.Sequential(_conv(in_channels + (4 if ray_encoding else 0), in_channels),
                                       nn.Conv2d(in_channels, self.num_bins + out_channels, 1))

    def _pixel_centres(self, h: int, w: int, device):
        """Image rows ``v [h]`` and columns ``u [w]`` (float64 pixels) of the feature pixels' centres."""
        v = (torch.arange(h, device=device, dtype=torch.float64) + 0.5) * self.stride
        u = (torch.arange(w, device=device, dtype=torch.float64) + 0.5) * self.stride
        return v, u

    def frustum(self, lidar2img: torch.Tensor, bev_aug: torch.Tensor, hw) -> torch.Tensor:
        """``[B, V, D, h, w, 3]`` frustum points in the BEV frame from ``lidar2img [B, V, 4, 4]`` and ``bev_aug
        [B, 4, 4]``."""
        h, w = hw
        dev = lidar2img.device
        d = self.start + self.step * torch.arange(self.num_bins, device=dev, dtype=torch.float64)
        d, v, u = torch.meshgrid(d, *self._pixel_centres(h, w, dev), indexing="ij")
        pix = torch.stack([u * d, v * d, d, torch.ones_like(d)], -1)  # [D, h, w, 4]
        img2bev = bev_aug.double()[:, None] @ torch.linalg.inv(lidar2img.double())  # [B, V, 4, 4]
        pts = torch.einsum("bvij,dhwj->bvdhwi", img2bev, pix)[..., :3]
        return pts.to(torch.float32)

    def rays(self, lidar2img: torch.Tensor, hw) -> torch.Tensor:
        """``[B, V, 4, h, w]``: the unit direction (x, y, z) of the ray through each feature pixel's centre
        ``((j + 0.5) s, (i + 0.5) s)`` and the z of its camera's centre, in the LiDAR frame (``lidar2img [B, V, 4,
        4]`` maps LiDAR points to ``(u d, v d, d, 1)``, so its inverse maps ``(0, 0, 0, 1)`` to the camera centre and
        ``(u, v, 1, 1)`` to the ray's point at depth 1)."""
        h, w = hw
        dev = lidar2img.device
        v, u = torch.meshgrid(*self._pixel_centres(h, w, dev), indexing="ij")
        pix = torch.stack([u, v, torch.ones_like(u), torch.ones_like(u)], -1)  # [h, w, 4]
        inv = torch.linalg.inv(lidar2img.double())  # [B, V, 4, 4]
        centre = inv[..., :3, 3]  # [B, V, 3]
        ray = torch.einsum("bvij,hwj->bvhwi", inv, pix)[..., :3] - centre[:, :, None, None]
        ray = ray / ray.norm(dim=-1, keepdim=True)
        height = centre[:, :, None, None, 2:].expand(*ray.shape[:-1], 1)
        return torch.cat([ray, height], -1).permute(0, 1, 4, 2, 3).to(torch.float32)

    def depth_and_context(self, feats: torch.Tensor, lidar2img: torch.Tensor) -> torch.Tensor:
        """The depth net on ``feats [B, V, C_in, h, w]`` (with the rays of ``lidar2img`` when ``ray_encoding``):
        ``[B * V, D + out_channels, h, w]``, the depth logits first."""
        B, V, C, h, w = feats.shape
        if self.ray_encoding:
            feats = torch.cat([feats, self.rays(lidar2img, (h, w)).to(feats.dtype)], 2)
        return self.depth_net(feats.flatten(0, 1))

    def forward(self, feats: torch.Tensor, lidar2img: torch.Tensor, bev_aug: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Returns ``bev [B, out_channels, H, W]`` and ``depth [B, V, D, h, w]`` (probabilities)."""
        B, V, C, h, w = feats.shape
        x = self.depth_and_context(feats, lidar2img)
        depth = x[:, :self.num_bins].softmax(1).view(B, V, self.num_bins, h, w)
        context = x[:, self.num_bins:].view(B, V, self.out_channels, h, w)
        bev = bev_pool(depth, context, self.frustum(lidar2img, bev_aug, (h, w)), self.grid)
        return dict(bev=bev.contiguous(), depth=depth)

    def depth_targets(self, depth_maps: torch.Tensor) -> torch.Tensor:
        """``depth_maps [B, V, H, W]`` (metres, 0 = none) -> ``[B, V, h, w]`` int64 bin of the smallest depth in
        each stride x stride patch, -1 where the patch has no depth in ``[start, start + D * step)``."""
        B, V, H, W = depth_maps.shape
        s = self.stride
        d = torch.where(depth_maps > 0, depth_maps, torch.full_like(depth_maps, float("inf")))
        d = d.view(B, V, H // s, s, W // s, s).amin((3, 5))
        bins = torch.floor((d - self.start) / self.step)
        ok = torch.isfinite(d) & (bins >= 0) & (bins < self.num_bins)
        return torch.where(ok, bins, torch.full_like(bins, -1)).long()

    @float32_loss
    def depth_loss(self, depth: torch.Tensor, depth_maps: torch.Tensor) -> torch.Tensor:
        target = self.depth_targets(depth_maps)
        pred = depth.permute(0, 1, 3, 4, 2)[target >= 0]  # [P, D]
        if len(pred) == 0:
            return depth.sum() * 0
        onehot = F.one_hot(target[target >= 0], self.num_bins).to(pred.dtype)
        bce = F.binary_cross_entropy(pred.clamp(1e-6, 1 - 1e-6), onehot, reduction="sum")
        return self.depth_loss_weight * bce / len(pred)


@MODELS.register_module()
class CameraBEVEncoder(nn.Module):
    """Multi-view images -> BEV: ``ImageEncoder`` then ``LSSTransform``; ``forward(imgs [B, V, 3, H, W],
    lidar2img [B, V, 4, 4], bev_aug [B, 4, 4])`` -> dict ``bev``, ``depth``."""

    def __init__(self, image_encoder: dict, view_transform: dict):
        super().__init__()
        self.image_encoder = MODELS.build(image_encoder)
        view_transform = dict(view_transform, in_channels=self.image_encoder.out_channels,
                              stride=self.image_encoder.stride)
        self.view_transform = MODELS.build(view_transform)
        self.out_channels = self.view_transform.out_channels

    def forward(self, imgs, lidar2img, bev_aug):
        B, V, _, H, W = imgs.shape
        s = self.image_encoder.stride
        if H % s or W % s:
            raise ValueError(f"CameraBEVEncoder: image size {H}x{W} is not divisible by the image encoder's stride "
                             f"{s}; set final_hw in LoadMultiViewImages to multiples of {s}")
        feats = self.image_encoder(imgs.flatten(0, 1))
        return self.view_transform(feats.view(B, V, *feats.shape[1:]), lidar2img, bev_aug)
