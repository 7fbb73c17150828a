"""3D -> 2D distillation of LiDAR segments into an image segmenter (Drive&Segment, Vobecky et al. 2022): what one
segment looks like to a 2D backbone, and the 2D student's inference.

- ``masked_segment_crops``: the tight square around a segment's pixels, cut from the NORMALISED image, with every
  pixel outside the segment set to 0 after normalisation (so the mask reads as the dataset's mean colour, not as
  black), resized to ``size x size``.
- ``segment_features``: the backbone's features averaged over each crop, L2-normalised.
- ``sliding_window_logits``: a segmenter's logits over windows that tile the image with a stride, averaged where
  windows overlap (the anchor's ``merge_windows``).
- ``ContrastiveCropEncoder``: a label-free backbone, trained to tell each crop from the others under colour
  augmentations (SimCLR's loss, ``nt_xent``).
"""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from pc_kd.utils.image import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["normalise_images", "masked_segment_crops", "pool_over_segment", "segment_features",
           "sliding_window_logits", "nt_xent", "augment_crops", "ContrastiveCropEncoder"]


def normalise_images(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                     std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """``images [..., 3, H, W]`` float 0..1 -> ``(x - mean) / std`` per channel."""
    mean = torch.as_tensor(mean, dtype=images.dtype).view(3, 1, 1)
    std = torch.as_tensor(std, dtype=images.dtype).view(3, 1, 1)
    return (images - mean) / std


def masked_segment_crops(image: torch.Tensor, segment_image: torch.Tensor, size: int = 32, min_pixels: int = 4,
                         mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
    """One masked crop per segment seen in one view.

    Args:
        image: ``[3, H, W]`` float 0..1 (RGB).
        segment_image: ``[H, W]`` int64 segment id per pixel, -1 for none (``pc_kd.projection.segment_images``).
        size: the crops' side after resizing (bilinear).
        min_pixels: segments covering fewer pixels are skipped.

    Returns ``crops [S, 3, size, size]`` (normalised, 0 outside the segment) and ``ids [S]`` the segment of each.
    The square is centred on the segment's bounding box with the box's longer side (a tall pedestrian stays tall);
    where it leaves the image it is padded with 0 (outside the segment).
    """
    if image.ndim != 3 or image.shape[0] != 3 or segment_image.shape != image.shape[1:]:
        raise ValueError(f"masked_segment_crops: expected image [3, H, W] and segment_image [H, W] of the same H, W; "
                         f"got {tuple(image.shape)} and {tuple(segment_image.shape)}")
    normalised = normalise_images(image.float(), mean, std)
    ids, counts = torch.unique(segment_image[segment_image >= 0], return_counts=True)
    ids = ids[counts >= min_pixels]
    h, w = segment_image.shape
    crops = []
    for s in ids.tolist():
        mask = segment_image == s
        masked = normalised * mask  # zero outside the segment, AFTER normalisation
        rows, cols = torch.nonzero(mask.any(1)).view(-1), torch.nonzero(mask.any(0)).view(-1)
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        side = max(r1 - r0, c1 - c0)
        top, left = (r0 + r1 - side) // 2, (c0 + c1 - side) // 2
        square = masked.new_zeros(3, side, side)
        sr0, sr1, sc0, sc1 = max(top, 0), min(top + side, h), max(left, 0), min(left + side, w)
        square[:, sr0 - top:sr1 - top, sc0 - left:sc1 - left] = masked[:, sr0:sr1, sc0:sc1]
        crops.append(F.interpolate(square[None], size=(size, size), mode="bilinear", align_corners=False)[0])
    if not crops:
        return image.new_zeros(0, 3, size, size), ids
    return torch.stack(crops), ids


def pool_over_segment(features: torch.Tensor, crops: torch.Tensor) -> torch.Tensor:
    """``features [S, C, h, w]`` of ``crops [S, 3, H, W]`` -> ``[S, C]``: the mean over the feature cells weighted by
    the share of each cell's pixels inside the segment (the crop's non-zero pixels)."""
    inside = (crops.abs().sum(1, keepdim=True) > 0).float()
    weight = F.adaptive_avg_pool2d(inside, features.shape[2:])
    return (features * weight).sum((2, 3)) / weight.sum((2, 3)).clamp(min=1e-6)


@torch.no_grad()
def segment_features(backbone: nn.Module, crops: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """``crops [S, 3, h, w]`` -> ``[S, C]``: ``backbone.forward_features`` averaged over each crop's segment
    (``pool_over_segment``), L2-normalised."""
    if len(crops) == 0:
        return crops.new_zeros(0, 0)
    out = []
    for i in range(0, len(crops), batch_size):
        out.append(pool_over_segment(backbone.forward_features(crops[i:i + batch_size]), crops[i:i + batch_size]))
    return F.normalize(torch.cat(out), dim=1)


def _window_starts(length: int, window: int, stride: int):
    if window >= length:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] + window < length:
        starts.append(length - window)  # the last window ends at the border
    return starts


@torch.no_grad()
def sliding_window_logits(model: nn.Module, images: torch.Tensor, window: Tuple[int, int],
                          stride: Tuple[int, int]) -> torch.Tensor:
    """``model(x [B, 3, h, w]) -> [B, K, h, w]`` run on windows of ``window = (h, w)`` pixels every ``stride``
    pixels (the last window of a row / column ends at the border), the logits averaged where windows overlap.
    ``images [B, 3, H, W]`` -> ``[B, K, H, W]``. A window as large as the image is one full pass."""
    b, _, h, w = images.shape
    wh, ww = min(window[0], h), min(window[1], w)
    total, count = None, images.new_zeros(1, 1, h, w)
    for top in _window_starts(h, wh, stride[0]):
        for left in _window_starts(w, ww, stride[1]):
            logits = model(images[:, :, top:top + wh, left:left + ww])
            if total is None:
                total = images.new_zeros(b, logits.shape[1], h, w)
            total[:, :, top:top + wh, left:left + ww] += logits
            count[:, :, top:top + wh, left:left + ww] += 1
    return total / count


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """SimCLR's loss: ``z_a, z_b [B, D]`` embeddings of two augmentations of the same B items; each of the 2B
    embeddings must pick its partner among the other 2B - 1 by cosine similarity / ``temperature`` (cross-entropy,
    averaged)."""
    z = F.normalize(torch.cat([z_a, z_b]), dim=1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    b = len(z_a)
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(b)])
    return F.cross_entropy(sim, partner)


def augment_crops(crops: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random views of masked crops ``[B, 3, S, S]`` (normalised, 0 outside the segment) that keep the segment's
    shape and shading but not its paint: colour channels permuted, contrast scaled, brightness shifted inside the
    segment, grey with probability 0.3, a random square of 70-100 % of the side resized back, horizontal flip."""
    b, _, size, _ = crops.shape
    inside = (crops.abs().sum(1, keepdim=True) > 0).float()
    perm = torch.stack([torch.randperm(3, generator=g) for _ in range(b)])
    x = torch.gather(crops, 1, perm[:, :, None, None].expand_as(crops))
    x = x * (0.6 + 0.8 * torch.rand(b, 1, 1, 1, generator=g)) + inside * (torch.rand(b, 1, 1, 1, generator=g) - 0.5)
    grey = torch.rand(b, 1, 1, 1, generator=g) < 0.3
    x = torch.where(grey, x.mean(1, keepdim=True).expand_as(x), x)
    out = torch.empty_like(x)
    for k in range(b):
        side = int(size * (0.7 + 0.3 * float(torch.rand(1, generator=g))))
        top, left = (int(torch.randint(size - side + 1, (1,), generator=g)) for _ in range(2))
        view = x[k:k + 1, :, top:top + side, left:left + side]
        out[k] = F.interpolate(view, size=(size, size), mode="bilinear", align_corners=False)[0]
    flip = torch.rand(b, generator=g) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


class ContrastiveCropEncoder(nn.Module):
    """A backbone trained without labels on masked segment crops (SimCLR): ``encoder.forward_features`` averaged
    over the segment (``pool_over_segment``), a two-layer projection, ``nt_xent`` between two ``augment_crops``
    views of each crop. The colour augmentations make paint useless for telling crops apart, so the features keep
    shape and shading."""

    def __init__(self, encoder: nn.Module, feat_channels: int, proj_dim: int = 64, temperature: float = 0.2):
        super().__init__()
        self.encoder, self.temperature = encoder, temperature
        self.projection = nn.Sequential(nn.Linear(feat_channels, 128), nn.ReLU(inplace=True), nn.Linear(128, proj_dim))

    def loss(self, crops: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """``crops [B, 3, S, S]`` (``masked_segment_crops``) -> the contrastive loss (scalar)."""
        views = torch.cat([augment_crops(crops, g), augment_crops(crops, g)])
        z = self.projection(pool_over_segment(self.encoder.forward_features(views), views))
        return nt_xent(z[:len(crops)], z[len(crops):], self.temperature)
