"""Runner set-up shared by the tools: checked configs, safe checkpoints, a console that shows what matters."""
import contextlib
import importlib.util
import logging
import os
import os.path as osp
import re
import shlex
import sys
import tempfile

import torch
from mmengine.config import Config
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .hooks import inside_work_dir  # also registers PortableCheckpointHook
from pc_kd.utils.checks import DataError
from pc_kd.utils.dependencies import MissingDependencyError

from .checkpoint import (CheckpointFileError, check_state_dict_matches, check_torch_file, load_local_checkpoint,
                         setup_safe_checkpointing)
from .config_checks import ConfigError, add_config_options, check_config_keys, load_checked_config
from .mixed_precision import check_amp_option
from .sync_bn import check_sync_bn_option

# records that go to the log file only: the environment, the whole config and the hook table (hundreds of lines
# that would push an error out of sight on the console), and mmengine's notices about its own deprecated file
# client, which its CheckpointHook uses on every run (harmless: pc_kd registers the local backend it needs)
_FILE_ONLY = ("Config:\n", "\n" + "-" * 60 + "\nSystem environment:", "Hooks will be executed in the following order",
              '"FileClient" will be deprecated in future', '"HardDiskBackend" is the alias of "LocalBackend"')


class _ConsoleSummary(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_FILE_ONLY)


class PcKdRunner(Runner):
    """mmengine's Runner whose console leaves out the environment, config dump and hook table (they still go to
    the log file in the work dir) and says in one line what runs where."""

    def build_logger(self, *args, **kwargs):
        logger = super().build_logger(*args, **kwargs)
        for handler in logger.handlers:
            if not isinstance(handler, logging.FileHandler):
                handler.addFilter(_ConsoleSummary())
        return logger

    def load_or_resume(self) -> None:
        """mmengine's, but a resume without a checkpoint named takes :func:`latest_checkpoint` of this run's work
        dir (which never follows a path outside it) instead of ``find_latest_checkpoint``."""
        if self._resume and self._load_from is None and not self._has_loaded:
            self._load_from = latest_checkpoint(self.work_dir)
            if self._load_from is None:
                self._resume = False
        super().load_or_resume()

    def _log_env(self, env_cfg: dict) -> None:
        super()._log_env(env_cfg)
        log_file = next((h.baseFilename for h in self.logger.handlers if isinstance(h, logging.FileHandler)), None)
        self.logger.info(f"pc_kd: {self.cfg.filename or 'config'} -> work dir {self.work_dir}; seed "
                         f"{self.seed}; environment, full config and hooks in {log_file}")


def build_runner(cfg: Config, filename: str) -> Runner:
    """Check the config and build a Runner whose checkpoints load safely (see pc_kd.engine.checkpoint) and resume
    bit-exactly (RandomStateHook), with
    pictures of the first ``cfg.val_pictures`` samples of every validation (PredictionPicturesHook) and TensorBoard
    when it is installed."""
    check_config_keys(cfg, filename)
    setup_safe_checkpointing()
    hooks = list(cfg.get("custom_hooks", None) or [])
    for required in ("PortableCheckpointHook", "RandomStateHook"):
        if not any(str(h.get("type")).endswith(required) for h in hooks):
            hooks.append(dict(type=f"pc_kd.{required}"))
    if cfg.get("val_pictures", 0) and not any(str(h.get("type")).endswith("PredictionPicturesHook") for h in hooks):
        hooks.append(dict(type="pc_kd.PredictionPicturesHook", num_samples=int(cfg.val_pictures)))
    cfg.custom_hooks = hooks
    check_sync_bn_option(cfg.get("sync_bn"))
    check_amp_option(cfg)
    if cfg.get("launcher", "none") != "none" and not torch.cuda.is_available():
        _cpu_distributed(cfg)
    if "visualizer" not in cfg:  # scalars to <work_dir>/<timestamp>/vis_data, and to TensorBoard when installed
        backends = [dict(type="LocalVisBackend")]
        if importlib.util.find_spec("tensorboard") is not None:
            backends.append(dict(type="TensorboardVisBackend"))
        cfg.visualizer = dict(type="Visualizer", vis_backends=backends)
    return RUNNERS.build(cfg) if "runner_type" in cfg else PcKdRunner.from_cfg(cfg)


def _cpu_distributed(cfg: Config) -> None:
    """Distributed training without GPUs (e.g. 2 CPU processes under torchrun): mmengine's launcher set-up selects a
    CUDA device and its DDP wrapper names one, so pc_kd opens the process group itself with gloo (from torchrun's
    RANK / WORLD_SIZE / MASTER_ADDR) and wraps the model with no device (CpuDistributedDataParallel, which also
    gives ``sync_bn='torch'`` a SyncBN that works on CPU)."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    cfg.env_cfg = dict(cfg.get("env_cfg", {}), dist_cfg=dict(backend="gloo"))
    if cfg.get("model_wrapper_cfg") is None:
        cfg.model_wrapper_cfg = dict(type="pc_kd.CpuDistributedDataParallel", broadcast_buffers=False,
                                     find_unused_parameters=cfg.get("find_unused_parameters", False))


def bare_model(model):
    """The model inside a distributed / data-parallel wrapper (or the model itself)."""
    return model.module if is_model_wrapper(model) else model


def load_weights_strict(runner: Runner, checkpoint: str) -> None:
    """Load ``checkpoint`` into the runner's model, raising when keys or shapes do not match."""
    ckpt = load_local_checkpoint(checkpoint, map_location="cpu")
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    check_state_dict_matches(bare_model(runner.model), state, checkpoint)
    runner.load_checkpoint(checkpoint, map_location="cpu", strict=True)


def add_runner_args(parser) -> None:
    """Arguments shared by tools/train.py, tools/test.py and the demos."""
    parser.add_argument("--work-dir", help="folder for logs and checkpoints (default: work_dirs/<config name>)")
    add_config_options(parser)
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                        help="how the processes were started (pytorch: torchrun, see tools/dist_train.sh)")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0,
                        help="set by the launcher; do not pass by hand")


def load_config(args) -> Config:
    """Config from ``args.config`` (named when missing, keys checked) with ``--cfg-options`` (checked against
    the config and the constructors it names), launcher and work dir applied (see add_runner_args)."""
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    cfg = load_checked_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or osp.join(
        "work_dirs", osp.splitext(osp.basename(args.config))[0])
    check_writable_folder(cfg.work_dir, "--work-dir" if args.work_dir else "work dir")
    return cfg


def check_writable_folder(path: str, option: str) -> None:
    """Raise ConfigError ``<option> <path> cannot be written: <why>`` unless ``path`` is a folder this process can
    create files in (made when missing; folders made only for the check are removed again). Called before any
    work, so a long job does not fail at its end."""
    path = osp.abspath(path)
    if osp.exists(path) and not osp.isdir(path):
        raise ConfigError(f"{option} {path} cannot be written: it is a file, not a folder. Pass a folder")
    made, parent = [], path
    while not osp.exists(parent):
        made.append(parent)
        parent = osp.dirname(parent)
    try:
        for folder in reversed(made):
            os.mkdir(folder)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".pc_kd_write_check_"):
            pass
    except OSError as err:
        why = err.strerror or str(err)
        raise ConfigError(f"{option} {path} cannot be written: {why}. Pass a folder you can write to") from None
    finally:
        for folder in made:
            if osp.isdir(folder) and not os.listdir(folder):
                os.rmdir(folder)


_NUMBERED_CHECKPOINT = re.compile(r"(epoch|iter)_(\d+)\.pth")  # what CheckpointHook writes


def _named_checkpoint(work_dir: str):
    """The checkpoint that ``<work_dir>/last_checkpoint`` names, taken by file name inside ``work_dir`` (mmengine
    writes an absolute path, which in a copied or moved run folder points at the original's files); None when
    there is no such file."""
    record = osp.join(work_dir, "last_checkpoint")
    if not osp.isfile(record):
        return None
    with open(record) as f:
        named = f.read().strip()
    if not named:
        return None
    own = inside_work_dir(named, work_dir, f"the checkpoint {record} names,")
    return own if osp.isfile(own) else None


def _numbered_checkpoints(work_dir: str) -> dict:
    """``{kind: [(number, path)]}`` of the ``epoch_<n>.pth`` / ``iter_<n>.pth`` files in ``work_dir``."""
    numbered = {}
    for name in os.listdir(work_dir):
        match = _NUMBERED_CHECKPOINT.fullmatch(name)
        if match:
            numbered.setdefault(match.group(1), []).append((int(match.group(2)), osp.join(work_dir, name)))
    return numbered


def latest_checkpoint(work_dir: str):
    """The checkpoint to resume from in ``work_dir``: the one its ``last_checkpoint`` file names (by file name,
    inside ``work_dir``), unless a training checkpoint of the same kind with a higher number (``epoch_<n>.pth`` /
    ``iter_<n>.pth``) lies beside it. A job killed after writing a checkpoint (atomically: a file there is whole)
    but before mmengine updated ``last_checkpoint`` then resumes from it instead of the one before, or at all when
    it was the first. None when there is neither. Never a file outside ``work_dir``."""
    if not osp.isdir(work_dir):
        return None
    named = _named_checkpoint(work_dir)
    numbered = _numbered_checkpoints(work_dir)
    if named is not None:
        match = _NUMBERED_CHECKPOINT.fullmatch(osp.basename(named))
        if match is None:
            return named  # a checkpoint of another name
        kind, number = match.group(1), int(match.group(2))
    elif len(numbered) == 1:
        kind, number = next(iter(numbered)), -1
    else:
        return None  # nothing there, or both kinds and no last_checkpoint to tell which run is meant
    newest = max(numbered.get(kind, []), default=(number, named))
    return newest[1] if newest[0] > number else named


def check_resumable(checkpoint: str, work_dir: str) -> None:
    """Raise CheckpointFileError when ``checkpoint``, the latest of ``work_dir``, is not a whole torch file,
    naming the newest earlier checkpoint of the same kind that is (or saying that none is)."""
    try:
        check_torch_file(checkpoint)
    except CheckpointFileError as err:
        match = _NUMBERED_CHECKPOINT.fullmatch(osp.basename(checkpoint))
        earlier = []
        if match:
            earlier = sorted((n, p) for n, p in _numbered_checkpoints(work_dir).get(match.group(1), [])
                             if n < int(match.group(2)))
        for _, path in reversed(earlier):
            try:
                check_torch_file(path)
            except CheckpointFileError:
                continue
            raise CheckpointFileError(f"{err}. The latest checkpoint of {work_dir} is damaged; the one before it is "
                                      f"whole: resume from it with --resume {path}") from None
        raise CheckpointFileError(f"{err}. The latest checkpoint of {work_dir} is damaged and no earlier one is "
                                  f"whole: start the run again without --resume") from None


def resume_settings(resume, work_dir: str):
    """``(cfg.resume, cfg.load_from)`` for the ``--resume`` value (None, 'latest', 'auto' or a path); 'latest' and
    'auto' take :func:`latest_checkpoint` (checked to be whole: :func:`check_resumable`); 'auto' with no checkpoint
    starts afresh, ``(False, None)``."""
    if resume is None:
        return False, None
    if resume in ("auto", "latest"):
        found = latest_checkpoint(work_dir)
        if found is None:
            if resume == "auto":
                return False, None
            raise FileNotFoundError(
                f"--resume: no checkpoint to resume from in {work_dir} (no last_checkpoint file, no epoch_<n>.pth "
                f"or iter_<n>.pth). Start without --resume, pass the checkpoint (--resume PATH), point --work-dir at "
                f"the run to continue, or use --resume auto to resume only when a checkpoint exists")
        check_resumable(found, work_dir)
        return True, found
    if not osp.isfile(resume):
        raise FileNotFoundError(f"--resume: checkpoint not found: {resume}")
    return True, resume


class Interrupted(KeyboardInterrupt):
    """Ctrl-C with the one line to print instead of a traceback (:func:`exit_on_user_error`)."""


def resume_command(argv) -> str:
    """The command that continues the run ``argv`` started: the same command with ``--resume`` (any ``--resume``
    value it had dropped)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            if not arg.startswith("-"):
                continue
        if arg == "--resume":
            skip = True
            continue
        if arg.startswith("--resume="):
            continue
        kept.append(arg)
    return " ".join(shlex.quote(a) for a in kept) + " --resume"


@contextlib.contextmanager
def exit_on_user_error():
    """Around a tool's ``main``: a mistake of the user's (a config or option that cannot work, a missing or
    unreadable file, a missing optional package) ends the program with its message and exit status 1 instead of a
    traceback, and Ctrl-C with one line (:class:`Interrupted`'s message when the tool gave one) and status 130;
    ``PC_KD_TRACEBACK=1`` shows the traceback as well. Other exceptions (bugs) propagate unchanged."""
    try:
        yield
    except (ConfigError, DataError, FileNotFoundError, CheckpointFileError, MissingDependencyError) as err:
        if os.environ.get("PC_KD_TRACEBACK"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as stop:
        if os.environ.get("PC_KD_TRACEBACK"):
            raise
        print(f"\n{stop}" if isinstance(stop, Interrupted) and str(stop) else "\ninterrupted", file=sys.stderr)
        sys.exit(130)
