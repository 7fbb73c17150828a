"""PartDistill's backward distillation as a Runner hook: the plateau trigger on the epoch-mean loss, one snapshot
of the student's labels on every training shape, the units re-scored by it for the remaining epochs."""
from typing import List, Optional

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from mmengine.hooks import Hook
from mmengine.logging import print_log

from pc_kd.datasets.transforms.part_units import PackPartUnitsInputs
from pc_kd.structures.part_units import plateau_reached, rescore_shapes
from pc_kd.registry import HOOKS

from .config_checks import ConfigError
from .runner import bare_model

STATE_KEY = "backward_distillation"


@HOOKS.register_module()
class BackwardDistillationHook(Hook):
    """Backward distillation (PartDistill) for an epoch-based run of a ``PartDistillSegmentor`` on a
    ``PartUnitsDataset``.

    After every training epoch the mean of its iteration losses joins the loss curve; the first time
    :func:`~pc_kd.structures.part_units.plateau_reached` (``plateau_window``, ``plateau_tol``) holds, and
    epochs remain, the student labels every training shape once (no augmentation, ``batch_size`` shapes at a time),
    every unit is re-scored (:func:`~pc_kd.structures.part_units.rescore_shapes`; ``balance``: balanced per part
    over all units, a pc_kd option) and the re-scores
    replace the unit scores the loss weighs (``dataset.set_unit_scores``) for every remaining epoch.
    ``enabled=False`` keeps the loss curve and never re-scores (forward distillation only).

    The loss curve, the trigger epoch and the re-scores are saved in every checkpoint (``meta`` key
    ``backward_distillation``) and restored on ``--resume``, so a resumed run weighs the units as the interrupted
    one did. Data-loader workers must be started again each epoch to see the re-scores:
    ``persistent_workers=True`` with workers stops at the start.
    """

    priority = "LOW"

    def __init__(self, plateau_window: int = 5, plateau_tol: float = 0.01, balance: bool = False,
                 enabled: bool = True, batch_size: int = 16):
        self.plateau_window, self.plateau_tol = int(plateau_window), float(plateau_tol)
        self.balance, self.enabled, self.batch_size = bool(balance), bool(enabled), int(batch_size)
        self.epoch_losses: List[float] = []
        self.trigger_epoch: Optional[int] = None
        self.rescores: Optional[List[np.ndarray]] = None
        self._iter_losses: List[float] = []

    # ------------------------------------------------------------------------------------------------ training
    def before_train(self, runner) -> None:
        loader_cfg = runner.cfg.get("train_dataloader", {}) or {}
        if loader_cfg.get("num_workers", 0) and loader_cfg.get("persistent_workers", False):
            raise ConfigError("BackwardDistillationHook: train_dataloader.persistent_workers=True keeps the workers' "
                              "copies of the dataset, which would never see the re-scored units; set "
                              "train_dataloader.persistent_workers=False (or num_workers=0)")
        if self.rescores is not None:  # restored from a checkpoint
            runner.train_dataloader.dataset.set_unit_scores(self.rescores)
            print_log(f"BackwardDistillationHook: resumed with the units re-scored after epoch "
                      f"{self.trigger_epoch}", "current")

    def before_train_epoch(self, runner) -> None:
        self._iter_losses = []

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if outputs and "loss" in outputs:
            self._iter_losses.append(float(outputs["loss"]))

    def after_train_epoch(self, runner) -> None:
        if not self._iter_losses:
            return
        self.epoch_losses.append(float(np.mean(self._iter_losses)))
        done = runner.epoch + 1  # epochs finished (runner.epoch counts from 0 and moves on after this hook)
        if (not self.enabled or self.trigger_epoch is not None or done >= runner.max_epochs
                or not plateau_reached(self.epoch_losses, self.plateau_window, self.plateau_tol)):
            return
        self.trigger_epoch = done
        dataset = runner.train_dataloader.dataset
        labels = self.snapshot(bare_model(runner.model), dataset)
        rescores = rescore_shapes(labels, [i["unit_points"] for i in dataset.data_list],
                                  [i["unit_labels"] for i in dataset.data_list], self.balance)
        self.rescores = [r.numpy().astype(np.float32) for r in rescores]
        dataset.set_unit_scores(self.rescores)
        flat = np.concatenate(self.rescores) if self.rescores else np.zeros(0)
        print_log(f"BackwardDistillationHook: the loss plateaued after epoch {done}; {len(flat)} units of "
                  f"{len(labels)} shapes re-scored by the student (mean re-score {flat.mean() if len(flat) else 0:.3f})"
                  f"; backward distillation from epoch {done + 1}", "current")

    @torch.no_grad()
    def snapshot(self, model, dataset) -> List[np.ndarray]:
        """The student's part label of every point of every shape of ``dataset`` (``[N_i]`` int64 each), without
        augmentation; the model is put back in its mode afterwards."""
        pack, was_training = PackPartUnitsInputs(), model.training
        model.eval()
        out = []
        try:
            for start in range(0, len(dataset.data_list), self.batch_size):
                infos = dataset.data_list[start:start + self.batch_size]
                batch = pseudo_collate([pack(dict(info)) for info in infos])
                data = model.data_preprocessor(batch, False)
                for sample in model(**data, mode="predict"):
                    out.append(sample.pred_pts_seg.pts_semantic_mask.cpu().numpy())
        finally:
            model.train(was_training)
        return out

    # ---------------------------------------------------------------------------------------------- checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault("meta", {})[STATE_KEY] = dict(
            epoch_losses=list(self.epoch_losses), trigger_epoch=self.trigger_epoch,
            rescores=None if self.rescores is None else [r.tolist() for r in self.rescores])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = (checkpoint.get("meta") or {}).get(STATE_KEY)
        if not state:
            return
        self.epoch_losses = [float(v) for v in state["epoch_losses"]]
        self.trigger_epoch = state["trigger_epoch"]
        self.rescores = (None if state["rescores"] is None
                         else [np.asarray(r, np.float32) for r in state["rescores"]])
