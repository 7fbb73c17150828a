"""What every experiment of the demos shares: seeded Runner configs, fingerprints of what decides a run's result
(so a finished run is reused only while its config and pc_kd's training code are unchanged) and the training or
reuse of a run by them, a built object of a registry, and mean +- std cells."""
import hashlib
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from mmengine.config import Config

PACKAGE = Path(__file__).resolve().parents[1]
# the code that decides what a training run computes: a change here makes a finished run stale
TRAINING_CODE = ("datasets", "heads", "models", "ops", "structures", "voxel", "projection")
RESULT_KEYS = ("model", "train_dataloader", "optim_wrapper", "param_scheduler", "train_cfg", "randomness")


def build(registry_name: str, cfg: dict):
    """``cfg`` built by pc_kd's registry ``registry_name`` (``"MODELS"``, ``"DATASETS"`` ...)."""
    from mmengine.registry import init_default_scope

    import pc_kd.registry as registry

    init_default_scope("pc_kd")
    return getattr(registry, registry_name).build(cfg)


def init_weights_quietly(model) -> None:
    """``model.init_weights()`` without mmengine's report of every parameter (one console line each when the
    current logger has no log file; a Runner writes it to its log file)."""
    import logging

    from mmengine.logging import MMLogger

    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)


def load_config(config, options: dict) -> Config:
    """``config`` with ``options`` (``--cfg-options`` keys) merged."""
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    return cfg


def seeded_config(config, options: dict, seed: int, work_dir, name: str) -> Config:
    """``config`` with ``options``, trained with ``seed`` into ``work_dir``, logged under its own experiment name
    (one logger per run when several runs share a process)."""
    cfg = load_config(config, options)
    cfg.work_dir, cfg.randomness = str(work_dir), dict(seed=seed, deterministic=False)
    cfg.experiment_name = f"{name}_seed{seed}"
    return cfg


def code_fingerprint(folders: Sequence[str] = TRAINING_CODE) -> str:
    """Hash of the source of pc_kd's ``folders`` (their ``.py`` files, in path order)."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            digest.update(str(path.relative_to(PACKAGE)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_fingerprint(cfg: Config, keys: Iterable[str] = RESULT_KEYS) -> str:
    """Hash of what decides a run's result: the config's ``keys`` (model, data, schedule, seed; not where it is
    written) and pc_kd's training code (:func:`code_fingerprint`)."""
    keep = {k: cfg.get(k) for k in keys}
    keep["pc_kd_code"] = code_fingerprint()
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def train_or_reuse(cfg: Config, config, label: str):
    """Train ``cfg`` (its ``work_dir``, ``config`` its file) by the Runner, or reuse the finished run there: its
    last checkpoint ``iter_<max_iters>.pth`` loaded, when ``<work_dir>/run.json`` records the same
    :func:`run_fingerprint`. Returns ``(runner, record, reused)``: the runner holding the trained weights, the
    recorded dict of the finished run (``{}`` when trained now; the caller writes ``run.json`` with
    :func:`write_run_record`), and whether it was reused; ``train_s`` is in the record when trained now."""
    import time

    from mmengine.logging import print_log

    from pc_kd.engine import build_runner

    record, ckpt = Path(cfg.work_dir) / "run.json", Path(cfg.work_dir) / f"iter_{cfg.train_cfg.max_iters}.pth"
    done = json.loads(record.read_text()) if record.exists() else {}
    if ckpt.exists() and done.get("fingerprint") == run_fingerprint(cfg):
        cfg.load_from = str(ckpt)
        runner = build_runner(cfg, str(config))
        runner.load_or_resume()
        print_log(f"{label}: reusing the finished run {ckpt} (delete {record} to train again)", "current")
        return runner, done, True
    runner = build_runner(cfg, str(config))
    start = time.perf_counter()
    runner.train()
    return runner, dict(train_s=time.perf_counter() - start), False


def train_and_record(cfg: Config, config, label: str):
    """:func:`train_or_reuse`; a run trained now gets its ``run.json`` (:func:`write_run_record`) with ``train_s``,
    ``iters`` and ``batch_size``. Returns ``(runner, record)``, the record with ``reused``."""
    runner, done, reused = train_or_reuse(cfg, config, label)
    if reused:
        return runner, dict(done, reused=True)
    record = dict(done, iters=cfg.train_cfg.max_iters, batch_size=cfg.train_dataloader.batch_size)
    write_run_record(cfg, record)
    return runner, dict(record, reused=False)


def write_run_record(cfg: Config, record: dict) -> Path:
    """``<work_dir>/run.json``: ``record`` with ``cfg``'s :func:`run_fingerprint` (what :func:`train_or_reuse`
    checks), written atomically."""
    from pc_kd.utils.io import atomic_write

    path = Path(cfg.work_dir) / "run.json"
    with atomic_write(path) as tmp:
        Path(tmp).write_text(json.dumps(dict(record, fingerprint=run_fingerprint(cfg)), indent=1))
    return path


def mean_std(values, sign: str = "") -> str:
    """``mean +- std`` of a row's values over seeds (the mean alone for one seed), 3 decimals."""
    v = np.asarray(values, dtype=float)
    return f"{v.mean():{sign}.3f}" + (f" +- {v.std():.3f}" if len(v) > 1 else "")
