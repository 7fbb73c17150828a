"""Checks of a config and of ``--cfg-options`` before a Runner is built, each failing with a message that says
what is wrong and how to fix it (mmengine would ignore a misspelt key, or fail later with a bare TypeError).
"""
import argparse
import difflib
import inspect
import logging
import os.path as osp
from glob import glob
from typing import Dict, Iterable, List, Optional, Set

from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

# the Runner's arguments, and the keys it reads from the config itself (sync_bn: BatchNorm -> SyncBN under DDP)
RUNNER_KEYS = set(inspect.signature(Runner.__init__).parameters) - {"self"} | {"runner_type", "_base_", "sync_bn"}
# top-level keys that pc_kd's tools and Runner set-up read besides the Runner's
PC_KD_KEYS = {"val_pictures", "fusion", "teacher_training", "superpoint_dir", "find_unused_parameters"}
CONFIG_DIR = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), "configs")


class ConfigError(ValueError):
    """A config or a ``--cfg-options`` entry that cannot work; the message names it and says how to fix it."""


class ConfigOptionsAction(DictAction):
    """``--cfg-options KEY=VALUE ...`` as mmengine's DictAction, but an item without ``=`` or without a key is
    an argparse usage error naming the item (not ``not enough values to unpack``)."""

    def __call__(self, parser, namespace, values, option_string=None):
        for item in values:
            key, sep, _ = item.partition("=")
            if not sep or not key.strip():
                parser.error(f"{option_string}: {item!r} is not KEY=VALUE (example: train_cfg.max_iters=100; "
                             f"nested keys are joined by dots)")
        super().__call__(parser, namespace, values, option_string)


def _close(word: str, choices: Iterable[str]) -> Optional[str]:
    match = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.75)
    return match[0] if match else None


def config_file(path: str) -> str:
    """Return ``path`` when it is a file, else raise FileNotFoundError with the closest configs/ file names."""
    if osp.isfile(path):
        return path
    known = sorted(glob(osp.join(CONFIG_DIR, "**", "*.py"), recursive=True))
    names = {osp.basename(p): osp.relpath(p, osp.dirname(CONFIG_DIR)) for p in known if "_base_" not in p}
    close = difflib.get_close_matches(osp.basename(path), list(names), n=3, cutoff=0.6)
    hint = ("; did you mean " + " or ".join(names[c] for c in close) + "?") if close else (
        f"; the configs are under {CONFIG_DIR} (configs/<method>/<method>_<student>_<teacher>_<dataset>.py)")
    raise FileNotFoundError(f"config not found: {path}{hint}")


_WARNED = set()  # (file, key): each warning once per process (the tools check a config twice)


def check_config_keys(cfg: Config, filename: str) -> None:
    """Top-level keys that look like misspelt Runner or pc_kd keys (``train_dataloder``), which mmengine would
    silently ignore: refused when the key they resemble is not in the config, a warning when it is (a base set the
    right key and the user's file a misspelt override of it, which would change nothing). Other top-level names
    are the usual config helper variables (``data_root`` ...)."""
    known = RUNNER_KEYS | PC_KD_KEYS
    for key in cfg.keys():
        if key in known:
            continue
        close = _close(key, known)
        if close and close not in cfg:
            raise ConfigError(f"config {filename}: unknown top-level key {key!r}; did you mean {close!r}?")
        if close and (filename, key) not in _WARNED:
            _WARNED.add((filename, key))
            print_log(f"config {filename}: top-level key {key!r} is read by neither the Runner nor pc_kd, so it "
                      f"changes nothing; did you mean {close!r} (which the config also sets, e.g. in a base)?",
                      "current", level=logging.WARNING)


# keys that the Runner reads from these config entries besides their constructor's arguments
_DATALOADER_KEYS = {"dataset", "sampler", "batch_sampler", "collate_fn", "worker_init_fn", "num_batch_per_epoch"}
_LOOP_KEYS = {"type", "by_epoch"}


def _dataloader_params() -> Set[str]:
    from torch.utils.data import DataLoader
    return set(inspect.signature(DataLoader.__init__).parameters) - {"self"} | _DATALOADER_KEYS


def _loop_params(name: str) -> Set[str]:
    from mmengine.runner.loops import EpochBasedTrainLoop, IterBasedTrainLoop, TestLoop, ValLoop
    loops = {"train_cfg": (EpochBasedTrainLoop, IterBasedTrainLoop), "val_cfg": (ValLoop,), "test_cfg": (TestLoop,)}
    params = set(_LOOP_KEYS)
    for loop in loops[name]:
        params |= set(inspect.signature(loop.__init__).parameters) - {"self", "runner", "dataloader", "evaluator"}
    return params


def _registered_class(type_name):
    """The class (or function) a config ``type`` names, searched in pc_kd's registries, which fall back to
    mmengine's; None when no registry knows it."""
    if not isinstance(type_name, str):
        return type_name if callable(type_name) else None
    from pc_kd import registry
    for reg in (registry.MODELS, registry.DATASETS, registry.TRANSFORMS, registry.METRICS, registry.HOOKS,
                *registry.SCOPE_ALIASES):
        try:
            found = reg.get(type_name)
        except Exception:  # a scope prefix of a package that is not installed
            found = None
        if found is not None:
            return found
    return None


def _accepted_keys(path: List[str], parent: dict) -> Optional[Set[str]]:
    """Keys the object built from ``parent`` (reached by ``path``) accepts, or None when anything goes (a
    constructor with ``**kwargs``, or one pc_kd does not know)."""
    if len(path) == 1 and path[0] in ("train_dataloader", "val_dataloader", "test_dataloader"):
        return _dataloader_params()
    if len(path) == 1 and path[0] in ("train_cfg", "val_cfg", "test_cfg") and "type" not in parent:
        return _loop_params(path[0])
    extra = {"type", "_scope_"}
    if path == ["optim_wrapper"]:
        extra |= {"optimizer", "constructor", "paramwise_cfg"}  # read by the optimiser-wrapper constructor
    cls = _registered_class(parent.get("type"))
    if cls is None:
        return None
    target = cls if inspect.isfunction(cls) else cls.__init__
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return None
    return set(params) - {"self"} | extra


def check_option_keys(cfg: Config, options: Dict[str, object]) -> None:
    """Check every ``--cfg-options`` key against ``cfg`` (before merging): the first part of a dotted key that
    is not yet in the config must not be a near-miss of a key that is (``max_epoch`` for ``max_epochs``) and,
    when the object it configures has a known constructor without ``**kwargs``, must be one of its arguments.
    Raises ConfigError naming the option, the object and the closest valid key."""
    for option in options:
        parts = option.split(".")
        node, path = cfg._cfg_dict if hasattr(cfg, "_cfg_dict") else cfg, []
        for part in parts:
            if isinstance(node, (list, tuple)):
                if not (part.isdigit() and int(part) < len(node)):
                    raise ConfigError(f"--cfg-options {option}: {'.'.join(path)} is a list of {len(node)} items; "
                                      f"{part!r} is not an index into it (0..{len(node) - 1})")
                node, path = node[int(part)], path + [part]
                continue
            if not isinstance(node, dict):
                break  # replacing a value by a dict: mmengine's business
            if part in node:
                node, path = node[part], path + [part]
                continue
            where = ".".join(path) or "the config's top level"
            if not path:
                close = None if part in RUNNER_KEYS else _close(part, set(node) | RUNNER_KEYS)
                if close:
                    raise ConfigError(f"--cfg-options {option}: unknown top-level key {part!r}; did you mean "
                                      f"{close!r}?")
                break
            accepted = _accepted_keys(path, node)
            if accepted is not None and part in accepted:
                break  # a valid argument that the config leaves at its default
            close = _close(part, set(node) | (accepted or set()))
            if close:
                raise ConfigError(f"--cfg-options {option}: {where} has no key {part!r}; did you mean {close!r}?")
            if accepted is not None:
                what = node.get("type") or path[-1]
                raise ConfigError(f"--cfg-options {option}: {what} ({where}) takes no argument {part!r}; it takes "
                                  f"{', '.join(sorted(accepted - {'type', '_scope_'}))}")
            break


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options`` with the checks of :class:`ConfigOptionsAction`."""
    parser.add_argument("--cfg-options", nargs="+", action=ConfigOptionsAction, default={}, metavar="KEY=VALUE",
                        help="override config entries, e.g. train_cfg.max_iters=100 "
                             "train_dataloader.batch_size=2 (nested keys joined by dots; checked against the "
                             "config and the constructors it names)")


def load_checked_config(path: str, options: Optional[Dict[str, object]] = None) -> Config:
    """Read config ``path`` (named when missing), check its top-level keys and ``options``, merge them."""
    cfg = Config.fromfile(config_file(path))
    check_config_keys(cfg, path)
    if options:
        check_option_keys(cfg, options)
        cfg.merge_from_dict(options)
    return cfg
