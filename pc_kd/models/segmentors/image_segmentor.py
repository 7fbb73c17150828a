"""A 2D segmentation model for the Runner: a registered image net trained with per-pixel cross-entropy on its
targets (e.g. Drive&Segment's pseudo-labels), predicting with sliding windows."""
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from pc_kd.registry import MODELS
from pc_kd.structures.class_names import IGNORE_INDEX

from .image_segments import sliding_window_logits


@MODELS.register_module()
class ImageSegmentor(BaseModel):
    """Per-pixel classes of camera images.

    Args:
        net: config of a 2D net with ``forward(x [B, 3, H, W]) -> logits [B, K, H, W]`` (e.g. ``TinySegNet`` with
            ``num_classes = K``, as many as the dataset's ``num_targets``).
        init_trunk_from: a local state dict (``torch.load(weights_only=True)``) loaded into every parameter of
            ``net`` except those under ``skip_prefixes`` (the classifier of another number of classes): a student
            initialised from the backbone that made its pseudo-labels. Missing or extra keys raise.
        window, window_stride: sliding-window inference (``(h, w)`` pixels; the windows' logits averaged where
            they overlap); None: one pass over the whole image.
        data_preprocessor: default :class:`ImageSegDataPreprocessor` (ImageNet normalisation, random flips).

    Modes (mmengine): ``loss`` -> ``dict(loss_ce)``, cross-entropy over the pixels of ``target_sem_seg`` that are
    not ``ignore_index``; ``predict`` -> data samples with ``pred_sem_seg.data [H, W]`` (argmax ids); ``tensor``
    -> logits ``[B, K, H, W]``.
    """

    def __init__(self, net: dict, init_trunk_from: Optional[str] = None, skip_prefixes: Sequence[str] = ("classifier",),
                 ignore_index: int = IGNORE_INDEX, window: Optional[Sequence[int]] = None,
                 window_stride: Optional[Sequence[int]] = None, data_preprocessor: Optional[dict] = None,
                 init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor or dict(type="ImageSegDataPreprocessor"),
                         init_cfg=init_cfg)
        self.net = MODELS.build(net)
        self.ignore_index = ignore_index
        if (window is None) != (window_stride is None):
            raise ValueError("ImageSegmentor: give window and window_stride together (or neither: whole images)")
        self.window = tuple(window) if window else None
        self.window_stride = tuple(window_stride) if window_stride else None
        if init_trunk_from:
            self.load_trunk(init_trunk_from, tuple(skip_prefixes))

    def load_trunk(self, path: str, skip_prefixes: tuple) -> None:
        """Load ``path`` into the net, all but the keys under ``skip_prefixes`` (which keep their init)."""
        from pc_kd.engine.checkpoint import check_state_dict_matches, load_local_checkpoint

        ckpt = load_local_checkpoint(path, map_location="cpu")
        state = {k: v for k, v in ckpt.get("state_dict", ckpt).items() if not k.startswith(skip_prefixes)}
        check_state_dict_matches(self.net, state, path, skip_prefixes)
        self.net.load_state_dict(state, strict=False)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """``images [B, 3, H, W]`` (normalised) -> ``[B, K, H, W]``, with sliding windows when configured."""
        if self.window is None:
            return self.net(images)
        return sliding_window_logits(self.net, images, self.window, self.window_stride)

    def forward(self, inputs: dict, data_samples: Optional[List] = None, mode: str = "tensor"):
        images = inputs["img"]
        if mode == "loss":
            target = torch.stack([s.target_sem_seg.data for s in data_samples]).to(images.device)
            logits = self.net(images)
            labelled = target != self.ignore_index
            if labelled.any() and int(target[labelled].max()) >= logits.shape[1]:
                raise ValueError(f"ImageSegmentor: target id {int(target[labelled].max())} but the net has "
                                 f"{logits.shape[1]} outputs; set the net's num_classes to the dataset's num_targets")
            if not labelled.any():  # a batch without a labelled pixel: no signal, but keep the graph
                return dict(loss_ce=logits.sum() * 0)
            return dict(loss_ce=F.cross_entropy(logits, target, ignore_index=self.ignore_index))
        if mode == "predict":
            pred = self.logits(images).argmax(1)
            for sample, p in zip(data_samples, pred):
                sample.pred_sem_seg = BaseDataElement(data=p)
            return data_samples
        if mode == "tensor":
            return self.logits(images)
        raise ValueError(f"ImageSegmentor: unknown mode {mode!r}; expected 'loss', 'predict' or 'tensor'")
