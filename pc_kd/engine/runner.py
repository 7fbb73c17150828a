"""Runner set-up shared by the tools: checked configs, safe checkpoints, a console that shows what matters."""
import contextlib
import importlib.util
import logging
import os
import os.path as osp
import re
import sys

import torch
from mmengine.config import Config
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner, find_latest_checkpoint

from . import hooks as _hooks  # noqa: F401  (registers PortableCheckpointHook)
from .checkpoint import CheckpointFileError, check_state_dict_matches, load_local_checkpoint, setup_safe_checkpointing
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
    return cfg


_NUMBERED_CHECKPOINT = re.compile(r"(epoch|iter)_(\d+)\.pth")  # what CheckpointHook writes


def latest_checkpoint(work_dir: str):
    """The checkpoint to resume from in ``work_dir``: the one its ``last_checkpoint`` file names, unless a training
    checkpoint of the same kind with a higher number (``epoch_<n>.pth`` / ``iter_<n>.pth``) lies beside it. A job
    killed after writing a checkpoint (atomically: a file there is whole) but before mmengine updated
    ``last_checkpoint`` then resumes from it instead of the one before, or at all when it was the first. None when
    there is neither."""
    if not osp.isdir(work_dir):
        return None
    named = find_latest_checkpoint(work_dir)
    numbered = {}  # kind -> [(number, path)]
    for name in os.listdir(work_dir):
        match = _NUMBERED_CHECKPOINT.fullmatch(name)
        if match:
            numbered.setdefault(match.group(1), []).append((int(match.group(2)), osp.join(work_dir, name)))
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


def resume_settings(resume, work_dir: str):
    """``(cfg.resume, cfg.load_from)`` for the ``--resume`` value (None, 'latest', 'auto' or a path); 'latest' and
    'auto' take :func:`latest_checkpoint`."""
    if resume is None:
        return False, None
    if resume == "auto":
        return True, latest_checkpoint(work_dir)
    if resume == "latest":
        found = latest_checkpoint(work_dir)
        if found is None:
            raise FileNotFoundError(
                f"--resume: no checkpoint to resume from in {work_dir} (no last_checkpoint file, no epoch_<n>.pth "
                f"or iter_<n>.pth). Start without --resume, pass the checkpoint (--resume PATH), point --work-dir at "
                f"the run to continue, or use --resume auto to resume only when a checkpoint exists")
        return True, found
    if not osp.isfile(resume):
        raise FileNotFoundError(f"--resume: checkpoint not found: {resume}")
    return True, resume


@contextlib.contextmanager
def exit_on_user_error():
    """Around a tool's ``main``: a mistake of the user's (a config or option that cannot work, a missing or
    unreadable file) ends the program with its message and exit status 1 instead of a traceback;
    ``PC_KD_TRACEBACK=1`` shows the traceback as well. Other exceptions (bugs) propagate unchanged."""
    try:
        yield
    except (ConfigError, FileNotFoundError, CheckpointFileError) as err:
        if os.environ.get("PC_KD_TRACEBACK"):
            raise
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
