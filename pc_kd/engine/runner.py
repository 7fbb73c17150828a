"""Runner set-up shared by tools/train.py and tools/test.py."""
import difflib
import os
import os.path as osp
import inspect

from mmengine.config import Config
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner

from . import hooks as _hooks  # noqa: F401  (registers PortableCheckpointHook)
from .checkpoint import check_state_dict_matches, load_local_checkpoint, setup_safe_checkpointing

RUNNER_KEYS = set(inspect.signature(Runner.__init__).parameters) - {"self"} | {"runner_type", "_base_"}


def check_config_keys(cfg: Config, filename: str) -> None:
    """Refuse top-level keys that look like misspelt Runner keys (``train_dataloder``), which mmengine would
    silently ignore. Other top-level names are the usual config helper variables (``data_root`` ...)."""
    for key in cfg.keys():
        if key in RUNNER_KEYS:
            continue
        close = difflib.get_close_matches(key, RUNNER_KEYS, n=1, cutoff=0.8)
        if close:
            raise KeyError(f"config {filename}: unknown top-level key {key!r}; did you mean {close[0]!r}?")


def build_runner(cfg: Config, filename: str) -> Runner:
    """Check the config and build a Runner whose checkpoints load safely (see pc_kd.engine.checkpoint)."""
    check_config_keys(cfg, filename)
    setup_safe_checkpointing()
    hooks = list(cfg.get("custom_hooks", None) or [])
    if not any(str(h.get("type")).endswith("PortableCheckpointHook") for h in hooks):
        hooks.append(dict(type="pc_kd.PortableCheckpointHook"))
    cfg.custom_hooks = hooks
    return Runner.from_cfg(cfg)


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
    """Arguments shared by tools/train.py, tools/test.py and tools/demo.py."""
    from mmengine.config import DictAction

    parser.add_argument("--work-dir", help="folder for logs and checkpoints (default: work_dirs/<config name>)")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                        help="override config entries, e.g. train_cfg.max_epochs=2")
    parser.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none")
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)


def load_config(args) -> Config:
    """Config from ``args.config`` with ``--cfg-options``, launcher and work dir applied (see add_runner_args)."""
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    cfg.work_dir = args.work_dir or cfg.get("work_dir") or osp.join(
        "work_dirs", osp.splitext(osp.basename(args.config))[0])
    return cfg
