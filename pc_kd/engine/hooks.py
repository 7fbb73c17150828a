"""Runner hooks."""
import json
import logging
import os.path as osp
import random
from pathlib import Path

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import EpochBasedTrainLoop, IterBasedTrainLoop

from pc_kd.datasets.samplers import EpochSeededSampler
from pc_kd.registry import HOOKS
from pc_kd.utils.io import atomic_write

from .checkpoint import PortableHistoryBuffer


@HOOKS.register_module()
class PortableCheckpointHook(Hook):
    """Checkpoints that load under ``torch.load(weights_only=True)`` and a run folder that stays its own (added by
    ``build_runner``).

    Saving: the message hub's log buffers are stored as :class:`PortableHistoryBuffer`, and functions are left out
    of the parameter schedulers' states (mmengine's OneCycleLR keeps its annealing function there, which would be
    pickled as a ``getattr`` call; the resumed scheduler keeps the one its constructor chose from the config).

    Loading for a resume: the best-score checkpoints the message hub names are taken by file name inside this
    run's work dir, so a run copied to another folder neither reads nor deletes the original's files. When the
    resumed schedule ends earlier than the one this run's config builds (a run lengthened on ``--resume``), a
    warning says that the learning rate will stay at its final value."""

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get("message_hub")
        if isinstance(hub, dict) and isinstance(hub.get("log_scalars"), dict):
            hub["log_scalars"] = {k: PortableHistoryBuffer.from_buffer(v) for k, v in hub["log_scalars"].items()}
        schedulers = checkpoint.get("param_schedulers")
        if isinstance(schedulers, dict):
            checkpoint["param_schedulers"] = {k: [_without_functions(s) for s in v] for k, v in schedulers.items()}
        elif isinstance(schedulers, list):
            checkpoint["param_schedulers"] = [_without_functions(s) for s in schedulers]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, "_resume", False):
            return
        info = (checkpoint.get("message_hub") or {}).get("runtime_info")
        if isinstance(info, dict):
            for key, path in info.items():
                if key.startswith("best_ckpt") and isinstance(path, str):
                    info[key] = inside_work_dir(path, runner.work_dir, "the checkpoint's best checkpoint")
        _warn_if_schedule_shortened(runner, checkpoint.get("param_schedulers"))


def inside_work_dir(path: str, work_dir: str, what: str) -> str:
    """``path`` taken by file name inside ``work_dir`` (a run's records name absolute paths, which in a copied or
    moved run folder point at the original's files); logged when it pointed elsewhere."""
    own = osp.join(work_dir, osp.basename(path))
    if osp.abspath(osp.dirname(path)) != osp.abspath(work_dir):
        print_log(f"resume: {what} {path} is outside this run's work dir; {own} is used instead", "current")
    return own


def _without_functions(state):
    """A scheduler's state dict without its callables (kept as is when it is not a dict)."""
    return {k: v for k, v in state.items() if not callable(v)} if isinstance(state, dict) else state


def _warn_if_schedule_shortened(runner, saved) -> None:
    """Warn when a resumed scheduler's ``end`` is earlier than the ``end`` this run's config gives it."""
    current = runner.param_schedulers
    if not saved or not current:
        return
    if isinstance(current, dict):
        pairs = [(s, c) for name in current for s, c in zip(saved.get(name, []), current[name])]
    else:
        pairs = list(zip(saved, current))
    for state, scheduler in pairs:
        old, new = (state or {}).get("end"), getattr(scheduler, "end", None)
        if isinstance(old, int) and isinstance(new, int) and old < new:
            unit = "epoch" if getattr(scheduler, "by_epoch", True) else "iteration"
            print_log(f"resume: the checkpoint's {type(scheduler).__name__} ends at {unit} {old}, this config's at "
                      f"{new}: a resume keeps the checkpoint's schedule, so after {unit} {old} the learning rate "
                      f"stays at its final value. To train longer with a new schedule, start a new run from the "
                      f"weights (--cfg-options load_from=<checkpoint>) instead of --resume", "current",
                      level=logging.WARNING)


def random_states() -> dict:
    """The process's random states (Python, numpy's global, torch CPU and every CUDA device) as tensors and
    plain values, which ``torch.load(weights_only=True)`` reads back."""
    version, internal, gauss = random.getstate()
    numpy = np.random.get_state(legacy=False)
    return dict(python=dict(version=version, internal=torch.tensor(internal, dtype=torch.int64), gauss=gauss),
                numpy=dict(key=torch.from_numpy(numpy["state"]["key"].astype(np.int64)), pos=int(numpy["state"]["pos"]),
                           has_gauss=int(numpy["has_gauss"]), gauss=float(numpy["gauss"])),
                torch=torch.get_rng_state(),
                cuda=list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [])


def set_random_states(states: dict) -> None:
    """Restore what :func:`random_states` returned (CUDA states only when as many devices are visible)."""
    py = states["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss"]))
    nps = states["numpy"]
    np.random.set_state(dict(bit_generator="MT19937", state=dict(key=nps["key"].numpy().astype(np.uint32),
                                                                 pos=nps["pos"]),
                             has_gauss=nps["has_gauss"], gauss=nps["gauss"]))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and torch.cuda.device_count() == len(states["cuda"]):
        torch.cuda.set_rng_state_all(states["cuda"])


def stateful_transforms(dataset) -> list:
    """The transforms with their own generator (``random_state`` / ``set_random_state``) in the pipelines of
    ``dataset`` and of the datasets it wraps (Concat / Repeat / ClassBalanced), in a fixed order."""
    found = []
    for ds in getattr(dataset, "datasets", None) or [getattr(dataset, "dataset", None)]:
        if ds is not None:
            found += stateful_transforms(ds)
    for transform in getattr(getattr(dataset, "pipeline", None), "transforms", []):
        if hasattr(transform, "random_state") and hasattr(transform, "set_random_state"):
            found.append(transform)
    return found


def _restore(states: dict, transforms: list) -> None:
    set_random_states(states)
    saved = states.get("transforms", [])
    if len(saved) == len(transforms):
        for transform, state in zip(transforms, saved):
            transform.set_random_state(state)
    else:
        print_log(f"RandomStateHook: the checkpoint holds the states of {len(saved)} random transforms, the "
                  f"pipeline has {len(transforms)}; theirs are not restored", "current")


class _RestoreAfterReplay:
    """Wraps an iter-based loop's data iterator: passes the first ``skip`` batches through (mmengine replays the
    iterations a resumed run has done), then restores ``states`` just before the next batch is drawn."""

    def __init__(self, iterator, skip: int, states: dict, transforms: list):
        self.iterator, self.skip, self.states, self.transforms = iterator, skip, states, transforms

    def __iter__(self):
        return self

    def __next__(self):
        if self.skip:
            self.skip -= 1
        elif self.states is not None:
            _restore(self.states, self.transforms)
            self.states = None
        return next(self.iterator)

    def __getattr__(self, name):
        return getattr(self.iterator, name)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Resume bit-exactly: every checkpoint carries the random states of the moment it was written, and a resumed
    run restores them where the uninterrupted run would have gone on (at the next epoch's start; for an
    iteration-based loop after mmengine has replayed the data of the done iterations), so augmentation and any
    random op of the model draw the same numbers. Validation runs leave the training's random states as they
    found them, so they change nothing either. Added by ``build_runner``.

    Covers data loaded in the main process (``num_workers=0``), iteration-based loops with workers (their
    states are rebuilt by the replay) and epoch-based loops with workers whose sampler is
    :class:`~pc_kd.datasets.EpochSeededSampler` (draws per sample and epoch). With another sampler an epoch-based
    loop with persistent workers resumes with fresh workers, whose augmentation differs (logged).

    With several processes every rank's states go into the checkpoints that ``CheckpointHook`` writes at the end of
    a training epoch or iteration (``random_states_per_rank``: gathered just before rank 0 writes, which is the
    only collective this adds, once per saved checkpoint) and a resume under the same number of processes gives
    each rank its own; under another number of processes none are restored (logged)."""

    priority = "VERY_HIGH"  # before CheckpointHook's after_train_* (VERY_LOW), which writes the checkpoint

    def __init__(self):
        self._pending = None
        self._before_val = None
        self._per_rank = None  # (iteration, states of every rank) gathered for the checkpoint about to be written

    def _states(self, runner) -> dict:
        return dict(random_states(),
                    transforms=[t.random_state() for t in stateful_transforms(self._train_dataset(runner))])

    def _gather_if_saving(self, runner, by_epoch: bool) -> None:
        """All ranks: gather every rank's states when a CheckpointHook is about to save (same rule as its own)."""
        if get_world_size() == 1:
            return
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook) or hook.by_epoch != by_epoch:
                continue
            if by_epoch:
                saving = hook.every_n_epochs(runner, hook.interval, hook.save_begin) or (
                    hook.save_last and hook.is_last_train_epoch(runner))
            else:
                saving = hook.every_n_train_iters(runner, hook.interval, hook.save_begin) or (
                    hook.save_last and hook.is_last_train_iter(runner))
            if saving:
                self._per_rank = (runner.iter, all_gather_object(self._states(runner)))
                return

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        self._gather_if_saving(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        self._gather_if_saving(runner, by_epoch=True)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        states = self._states(runner)
        if self._before_val is not None:
            # written during a validation (mmengine writes the best-score checkpoint and writes the last one again
            # when the best improves): the training's states, which after_val puts back, not the validation's
            states.update(self._before_val)
        checkpoint["random_states"] = states
        if self._per_rank is not None and self._per_rank[0] == runner.iter:  # no training step since the gather
            checkpoint["random_states_per_rank"] = self._per_rank[1]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if not getattr(runner, "_resume", False) or "random_states" not in checkpoint:
            return
        world = get_world_size()
        if world == 1:
            self._pending = checkpoint["random_states"]
            return
        per_rank = checkpoint.get("random_states_per_rank")
        if per_rank is None or len(per_rank) != world:
            saved = "rank 0's only" if per_rank is None else f"those of {len(per_rank)} processes"
            print_log(f"RandomStateHook: the checkpoint holds {saved} random states, this run has {world} "
                      f"processes, so none are restored (the resumed run is not bit-exact)", "current")
            return
        self._pending = per_rank[get_rank()]

    def before_train_epoch(self, runner) -> None:
        if self._pending is None:
            return
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            loop.dataloader_iterator = _RestoreAfterReplay(loop.dataloader_iterator, loop.iter, self._pending,
                                                           stateful_transforms(self._train_dataset(runner)))
        else:
            loader = getattr(loop, "dataloader", None)
            if getattr(loader, "persistent_workers", False) and not isinstance(getattr(loader, "sampler", None),
                                                                                EpochSeededSampler):
                print_log("RandomStateHook: the data loader's persistent workers start afresh after a resume, so "
                          "their augmentation differs from the uninterrupted run's (use "
                          "sampler=dict(type='EpochSeededSampler') to draw per sample and epoch)", "current")
            _restore(self._pending, stateful_transforms(self._train_dataset(runner)))
        self._pending = None

    @staticmethod
    def _train_dataset(runner):
        return getattr(getattr(runner.train_loop, "dataloader", None), "dataset", None)

    def before_val(self, runner) -> None:
        self._before_val = random_states()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            set_random_states(self._before_val)
            self._before_val = None


def _sample_name(sample, fallback: int) -> str:
    """A file name for a data sample: its point cloud's or image's stem (``scene0000_00``, a nuScenes token's file),
    else its sample index."""
    meta = sample.metainfo if hasattr(sample, "metainfo") else {}
    path = meta.get("lidar_path") or meta.get("pts_filename") or meta.get("img_path")
    if path:
        return Path(str(path)).name.split(".")[0]
    return f"sample_{meta.get('sample_idx', fallback):06d}"


@HOOKS.register_module()
class SavePredictionsHook(Hook):
    """Write each test sample's prediction to ``out_dir`` (``tools/test.py --out DIR``) and, after the test,
    the metrics as ``metrics.json``.

    Segmentation: ``<scene>.npy``, the predicted label (or cluster id) per input point, int64 ``[N]``. Image
    segmentation: ``<image>.png``, the predicted id per pixel (uint8, ``[H, W]``). Detection: ``<sample>.npz``
    with ``boxes [M, 9]`` (x, y, z, l, w, h, yaw, vx, vy; LiDAR frame, geometric
    centre), ``scores [M]``, ``labels [M]`` (indices into the dataset's classes). Every file is written atomically.
    """

    priority = "LOW"

    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.count = 0

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        for sample in outputs or []:
            name = _sample_name(sample, self.count)
            self.count += 1
            if "pred_pts_seg" in sample:
                labels = sample.pred_pts_seg.pts_semantic_mask.cpu().numpy()
                with atomic_write(osp.join(self.out_dir, f"{name}.npy")) as tmp:
                    with open(tmp, "wb") as f:
                        np.save(f, labels.astype(np.int64))
            elif "pred_sem_seg" in sample:
                from PIL import Image

                with atomic_write(osp.join(self.out_dir, f"{name}.png")) as tmp:
                    Image.fromarray(sample.pred_sem_seg.data.cpu().numpy().astype(np.uint8)).save(tmp, format="PNG")
            elif "pred_instances_3d" in sample:
                pred = sample.pred_instances_3d
                with atomic_write(osp.join(self.out_dir, f"{name}.npz")) as tmp:
                    with open(tmp, "wb") as f:
                        np.savez(f, boxes=pred.bboxes_3d.tensor.cpu().numpy(),
                                 scores=pred.scores_3d.cpu().numpy(), labels=pred.labels_3d.cpu().numpy())

    def after_test_epoch(self, runner, metrics=None) -> None:
        with atomic_write(osp.join(self.out_dir, "metrics.json")) as tmp:
            Path(tmp).write_text(json.dumps({k: float(v) for k, v in (metrics or {}).items()}, indent=1))
        runner.logger.info(f"SavePredictionsHook: {self.count} predictions and metrics.json in {self.out_dir}")


@HOOKS.register_module()
class PredictionPicturesHook(Hook):
    """Top-view pictures of predictions beside the ground truth, one PNG per sample.

    Segmentation: the points coloured by the labels and by the prediction, side by side, ceiling left out
    (``plot_bev_labels``; an unsupervised model's prediction is its cluster ids). Image segmentation: the image, its
    training targets, the true classes and the prediction (``plot_image_labels``). Detection: GT boxes dashed and
    predicted boxes solid, in class colours, over the LiDAR points of the head's range (``plot_bev_detections``;
    the title says the score threshold and how many predictions pass it) and, for a model with
    cameras, ``<sample>_cameras.png``: the boxes projected into its images (``draw_camera_detections``).

    Args:
        num_samples: pictures per validation (the first samples of the val set; -1: all).
        out_dir: folder of the test pictures (``tools/test.py --show-dir``); validation pictures go to
            ``<work_dir>/pictures/<iter_N | epoch_N>/``.
        stages: ``"val"`` and / or ``"test"``.
    """

    priority = "LOW"

    def __init__(self, num_samples: int = 2, out_dir: str = None, stages=("val",)):
        self.num_samples, self.out_dir, self.stages = num_samples, out_dir, tuple(stages)
        self.count = 0

    def before_val_epoch(self, runner) -> None:
        self.count = 0

    def before_test_epoch(self, runner) -> None:
        self.count = 0

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if "val" in self.stages:
            by_epoch = isinstance(getattr(runner, "_train_loop", None), EpochBasedTrainLoop)
            when = f"epoch_{runner.epoch}" if by_epoch else f"iter_{runner.iter}"
            self._draw(runner, runner.val_dataloader, data_batch, outputs,
                       osp.join(runner.work_dir, "pictures", when))

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if "test" in self.stages:
            self._draw(runner, runner.test_dataloader, data_batch, outputs,
                       self.out_dir or osp.join(runner.work_dir, "pictures", "test"))

    @staticmethod
    def _draw_image(dataloader, image, sample, name: str, png: str) -> None:
        from pc_kd.visualization import plot_image_labels

        meta = dataloader.dataset.metainfo
        num_targets, num_classes = int(meta.get("num_targets", 0)), len(meta.get("classes", ()))
        pred = sample.pred_sem_seg.data.cpu().numpy()
        labels, titles, counts = [], [f"{name}: image"], []
        if "target_sem_seg" in sample:
            labels.append(sample.target_sem_seg.data.cpu().numpy())
            titles.append(f"training targets ({meta.get('target', 'ids')})")
            counts.append(num_targets)
        if "gt_sem_seg" in sample:
            labels.append(sample.gt_sem_seg.data.cpu().numpy())
            titles.append("true classes")
            counts.append(num_classes)
        labels.append(pred)
        titles.append("prediction (its ids, unmatched)")
        counts.append(max(num_targets, int(pred.max()) + 1))
        image = (image.cpu() if hasattr(image, "cpu") else torch.as_tensor(image)).permute(1, 2, 0).numpy()
        plot_image_labels(image, labels, titles, counts, png)

    def _draw(self, runner, dataloader, data_batch, outputs, folder: str) -> None:
        from pc_kd.visualization import cutaway_mask, draw_camera_detections, plot_bev_detections, plot_bev_labels

        classes = list(dataloader.dataset.metainfo.get("classes", ()))
        for i, sample in enumerate(outputs or []):
            if 0 <= self.num_samples <= self.count:
                return
            name = _sample_name(sample, self.count)
            self.count += 1
            png = osp.join(folder, f"{name}.png")
            if "pred_sem_seg" in sample:  # a camera image: the image, its targets, the GT and the prediction
                self._draw_image(dataloader, data_batch["inputs"]["img"][i], sample, name, png)
                continue
            points = data_batch["inputs"]["points"][i]
            points = (points.cpu() if hasattr(points, "cpu") else torch.as_tensor(points)).numpy()
            if "pred_pts_seg" in sample and "gt_pts_seg" in sample:
                keep = cutaway_mask(points, "top")  # the ceiling left out, as in the 3D renders
                gt = sample.gt_pts_seg.pts_semantic_mask.cpu().numpy()[keep]
                pred = sample.pred_pts_seg.pts_semantic_mask.cpu().numpy()[keep]
                plot_bev_labels(points[keep], [gt, pred], [f"{name}: ground truth", "prediction"], classes, png)
            elif "pred_instances_3d" in sample and "gt_instances_3d" in sample:
                gt, pred = sample.gt_instances_3d, sample.pred_instances_3d
                model = runner.model.module if is_model_wrapper(runner.model) else runner.model
                plot_bev_detections(points, gt.bboxes_3d, gt.labels_3d.cpu().numpy(), pred.bboxes_3d,
                                    pred.labels_3d.cpu().numpy(), pred.scores_3d.cpu().numpy(), classes, png,
                                    bev_range=getattr(getattr(model, "head", None), "pc_range", None),
                                    title=f"{name}: ground truth (dashed) and predictions")
                if "imgs" in data_batch["inputs"] and "lidar2img" in sample:  # a camera model: its images too
                    imgs = data_batch["inputs"]["imgs"][i]
                    imgs = (imgs.cpu() if hasattr(imgs, "cpu") else torch.as_tensor(imgs)).permute(0, 2, 3, 1)
                    draw_camera_detections(list(imgs.numpy()), np.asarray(sample.lidar2img), pred.bboxes_3d,
                                           pred.labels_3d.cpu().numpy(), pred.scores_3d.cpu().numpy(), classes,
                                           osp.join(folder, f"{name}_cameras.png"), cam_names=sample.get("cam_names"),
                                           gt_boxes=gt.bboxes_3d, gt_labels=gt.labels_3d.cpu().numpy(),
                                           title=f"{name}: ground truth (dashed) and predictions")
