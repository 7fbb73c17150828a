"""Training a small 2D teacher (e.g. TinySegNet) on posed frames and their 2D label images.

The teacher learns from 2D labels only and, in the synthetic demo, on rooms of its own (a "2D dataset" that
the 3D student never sees), standing for an image model pretrained elsewhere.
"""
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from PIL import Image
from tqdm import tqdm

from pc_kd.utils.image import IMAGENET_MEAN, IMAGENET_STD
from pc_kd.utils.io import atomic_write

# the normalisation ModuleTeacher applies when it runs the trained net
IMAGE_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
IMAGE_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def load_labelled_frames(dataset):
    """Every frame of every scene in ``dataset`` with its 2D label image: ``images [F, 3, H, W]`` float 0..1 and
    ``labels [F, H, W]`` int64 (255 = ignore). A frame without ``label_path`` raises, naming the image."""
    images, labels = [], []
    print_log(f"reading the labelled frames of {len(dataset)} scenes", "current", logging.INFO)
    for i in tqdm(range(len(dataset)), desc="teacher frames", unit="scene", disable=None):
        for frame in dataset.get_data_info(i).get("images", []):
            if not frame.get("label_path"):
                raise KeyError(f"frame {frame['img_path']} has no 2D label image (label_path); a teacher is trained "
                               f"on frames with 2D labels")
            images.append(np.asarray(Image.open(frame["img_path"]).convert("RGB")))
            labels.append(np.asarray(Image.open(frame["label_path"])))
    if not images:
        raise ValueError("load_labelled_frames: the dataset lists no frames ('images' of its data infos)")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    return x, torch.from_numpy(np.stack(labels)).long()


def augment_frames(x: torch.Tensor, y: torch.Tensor, g: torch.Generator):
    """Random horizontal flip, colour-channel permutation, brightness / contrast jitter of ``x [B, 3, H, W]``
    (0..1) and the same flip of ``y [B, H, W]``. Colour is not what tells the classes apart, so the teacher
    is pushed towards shape and shading."""
    b = x.shape[0]
    flip = torch.rand(b, generator=g) < 0.5
    x, y = torch.where(flip[:, None, None, None], x.flip(3), x), torch.where(flip[:, None, None], y.flip(2), y)
    perm = torch.stack([torch.randperm(3, generator=g) for _ in range(b)])
    x = torch.gather(x, 1, perm[:, :, None, None].expand_as(x))
    mean = x.mean((1, 2, 3), keepdim=True)
    contrast = 0.7 + 0.6 * torch.rand(b, 1, 1, 1, generator=g)
    brightness = 0.8 + 0.4 * torch.rand(b, 1, 1, 1, generator=g)
    return ((x - mean) * contrast + mean).mul(brightness).clamp(0, 1), y


def train_image_teacher(dataset, model_cfg: dict, out: str, iters: int = 1000, batch_size: int = 8,
                        lr: float = 3e-3, seed: int = 0, half: bool = True) -> float:
    """Train ``model_cfg`` (a registered 2D segmentation net whose ``forward`` gives full-size logits, e.g.
    TinySegNet) with cross-entropy on the frames of ``dataset``, write ``{'state_dict': ...}`` to ``out``
    atomically (``ModuleTeacher(pretrained=out)`` loads it) and return its mIoU on its own training frames.
    ``half``: store floating-point weights as float16 (half the file; loading casts them back)."""
    from pc_kd.evaluation import confusion_matrix, scores_from_confusion
    from pc_kd.registry import MODELS

    torch.manual_seed(seed)
    images, labels = load_labelled_frames(dataset)
    model = MODELS.build(model_cfg)
    print_log(f"training the 2D teacher {model_cfg['type']} on {len(images)} frames for {iters} iterations",
              "current", logging.INFO)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=iters)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for it in range(iters):
        idx = torch.randint(len(images), (batch_size,), generator=g)
        x, y = augment_frames(images[idx], labels[idx], g)
        loss = F.cross_entropy(model((x - IMAGE_MEAN) / IMAGE_STD), y, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (it + 1) % 100 == 0 or it + 1 == iters:
            print_log(f"teacher iter {it + 1}/{iters}: loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)",
                      "current", logging.INFO)
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model((images[i:i + 16] - IMAGE_MEAN) / IMAGE_STD).argmax(1)
                          for i in range(0, len(images), 16)])
    miou = scores_from_confusion(confusion_matrix(pred.numpy().ravel(), labels.numpy().ravel(),
                                                  model_cfg["num_classes"]))["miou"]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        state = model.state_dict()
        if half:
            state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
        torch.save({"state_dict": state}, tmp)
    return miou
