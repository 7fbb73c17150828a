"""Loading and packing an image with its per-pixel targets (``ImageSegmentationDataset``)."""
import numpy as np
import torch
from mmengine.structures import BaseDataElement
from PIL import Image

from pc_kd.registry import TRANSFORMS


def _read_label_png(path: str, key: str) -> np.ndarray:
    label = np.asarray(Image.open(path))
    if label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError(f"{path} ({key}): expected a single-channel uint8 PNG of ids (255 = ignore); got shape "
                         f"{label.shape}, dtype {label.dtype}")
    return label


@TRANSFORMS.register_module()
class LoadImageWithTargets:
    """Reads ``img_path`` (RGB, ``img [H, W, 3]`` uint8), ``target_path`` (``target [H, W]`` uint8 ids the model
    learns from) and ``gt_path`` (``gt [H, W]`` uint8 true classes, evaluation only) when the info names them.
    A label image of another size than its image raises, naming both files."""

    def __call__(self, results: dict) -> dict:
        results["img"] = np.asarray(Image.open(results["img_path"]).convert("RGB"))
        for key in ("target", "gt"):
            path = results.get(f"{key}_path")
            if path:
                results[key] = _read_label_png(path, f"{key}_path")
                if results[key].shape != results["img"].shape[:2]:
                    raise ValueError(f"{path} ({key}_path) is {results[key].shape[1]} x {results[key].shape[0]} "
                                     f"but its image {results['img_path']} is {results['img'].shape[1]} x "
                                     f"{results['img'].shape[0]}")
        return results


@TRANSFORMS.register_module()
class PackImageSegInputs:
    """``inputs = {'img': [3, H, W] uint8 tensor}``; a data sample with ``target_sem_seg.data [H, W]`` (what the
    model learns from) and ``gt_sem_seg.data [H, W]`` (true classes) as int64 where loaded, and ``img_path``,
    ``sample_idx`` as meta."""

    def __call__(self, results: dict) -> dict:
        img = torch.from_numpy(np.ascontiguousarray(results["img"].transpose(2, 0, 1)))
        sample = BaseDataElement(metainfo={k: results[k] for k in ("img_path", "sample_idx") if k in results})
        for key in ("target", "gt"):
            if key in results:
                setattr(sample, f"{key}_sem_seg",
                        BaseDataElement(data=torch.from_numpy(results[key].astype(np.int64))))
        return {"inputs": {"img": img}, "data_samples": sample}
