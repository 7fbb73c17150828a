"""Train a small 2D segmentation teacher (TinySegNet) on a dataset's posed frames and their 2D label images.

    python tools/train_image_teacher.py CONFIG [--split train] [--iters 400] [--out teacher.pth]

Uses only 2D labels (the frames' ``label_path`` images, 255 = ignore), never the 3D labels. The weights are
written atomically as ``{'state_dict': ...}`` to ``--out`` (default: the config's ``fusion.teacher.pretrained``),
where ``ModuleTeacher(pretrained=...)`` loads them.
"""
import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.config import Config
from PIL import Image


def load_labelled_frames(dataset):
    images, labels = [], []
    for i in range(len(dataset)):
        for frame in dataset.get_data_info(i).get("images", []):
            if not frame.get("label_path"):
                raise KeyError(f"frame {frame['img_path']} has no 2D label image (label_path)")
            images.append(np.asarray(Image.open(frame["img_path"]).convert("RGB")))
            labels.append(np.asarray(Image.open(frame["label_path"])))
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0
    return x, torch.from_numpy(np.stack(labels)).long()


def train_image_teacher(dataset, model_cfg: dict, out: str, iters: int = 400, batch_size: int = 8, seed: int = 0):
    """Train ``model_cfg`` (a TinySegNet config) on the dataset's frames; returns the final training mIoU."""
    from pc_kd.evaluation import confusion_matrix, scores_from_confusion
    from pc_kd.registry import MODELS
    from pc_kd.utils.io import atomic_write

    torch.manual_seed(seed)
    images, labels = load_labelled_frames(dataset)
    model = MODELS.build(model_cfg)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)  # ModuleTeacher's normalisation
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=iters)
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    for it in range(iters):
        idx = torch.randint(len(images), (batch_size,), generator=g)
        x, y = images[idx], labels[idx]
        if torch.rand(1, generator=g) < 0.5:
            x, y = x.flip(3), y.flip(2)
        loss = F.cross_entropy(model((x - mean) / std), y, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if (it + 1) % 100 == 0:
            print(f"teacher iter {it + 1}/{iters}: loss {loss.item():.3f} ({time.perf_counter() - start:.0f} s)")
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model((images[i:i + 16] - mean) / std).argmax(1) for i in range(0, len(images), 16)])
    miou = scores_from_confusion(confusion_matrix(pred.numpy().ravel(), labels.numpy().ravel(),
                                                  model_cfg["num_classes"]))["miou"]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out) as tmp:
        torch.save({"state_dict": model.state_dict()}, tmp)
    return miou


def main(argv=None):
    from mmengine.registry import init_default_scope

    import pc_kd.models  # noqa: F401
    from pc_kd.registry import DATASETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--split", default="train", choices=["train", "val"])
    parser.add_argument("--iters", type=int, default=400)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get("default_scope", "pc_kd"))
    ds_cfg = cfg[f"{args.split}_dataloader"]["dataset"].copy()
    ds_cfg["pipeline"] = []
    teacher = cfg.fusion["teacher"]
    out = args.out or teacher["pretrained"]
    miou = train_image_teacher(DATASETS.build(ds_cfg), teacher["model"], out, args.iters)
    print(f"2D teacher written to {out}; mIoU on its training frames {miou * 100:.1f} %")
    return miou


if __name__ == "__main__":
    main()
