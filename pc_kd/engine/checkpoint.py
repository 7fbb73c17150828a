"""Checkpoint loading with ``torch.load(weights_only=True)`` and an explicit allowlist.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; on torch >= 2.6 that defaults to the safe
unpickler, which rejects mmengine's own ``HistoryBuffer`` (message hub) and the numpy arrays inside it, so
``--resume`` fails. pc_kd registers :func:`load_local_checkpoint` as the loader of local files: it keeps safe
loading on and allows exactly the types that mmengine checkpoints contain (listed in :func:`safe_globals`).
Anything else in a file (arbitrary classes, ``eval``-style reducers) is refused with the file named.

One more obstacle: mmengine pickles each HistoryBuffer together with its statistics functions, as
``getattr(HistoryBuffer, 'min')`` calls, and allowing ``getattr`` would allow anything. pc_kd's Runner
therefore saves the message hub's buffers as :class:`PortableHistoryBuffer` (same data, no functions; see
:class:`pc_kd.engine.hooks.PortableCheckpointHook`), which the allowlist admits.
"""
import os
import os.path as osp
import zipfile
from typing import List

import numpy as np
import torch
from mmengine.fileio.backends import LocalBackend, register_backend
from mmengine.fileio.io import backend_instances
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

from pc_kd.utils.io import atomic_write


class PortableHistoryBuffer(HistoryBuffer):
    """A HistoryBuffer that pickles only its data (the statistics functions are class-level anyway)."""

    def __getstate__(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_buffer(cls, buffer: HistoryBuffer) -> "PortableHistoryBuffer":
        new = cls.__new__(cls)
        new.__dict__.update(buffer.__dict__)
        return new


def safe_globals() -> List:
    """Types allowed in a checkpoint besides torch's defaults: mmengine's HistoryBuffer and plain numpy
    arrays, dtypes and scalars (what a Runner's message hub and meta hold)."""
    allowed = [HistoryBuffer, PortableHistoryBuffer, np.ndarray, np.dtype, np.core.multiarray._reconstruct, np.core.multiarray.scalar]
    allowed += [type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
                                             np.int64, np.uint8, np.bool_)]
    return allowed


class CheckpointFileError(ValueError):
    """A checkpoint file that cannot be loaded: not written by torch.save, or holding objects outside the
    allowlist; the message names the file and says what to do."""


# a legacy (torch < 1.6) torch.save file: a pickle (protocol 2) whose first object is this magic number
_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def check_torch_file(filename: str) -> None:
    """Raise CheckpointFileError when ``filename`` is not something ``torch.save`` wrote (a zip archive, or a legacy
    pickle starting with torch's magic number): a text file, an image, a truncated download..."""
    if zipfile.is_zipfile(filename):
        return
    with open(filename, "rb") as f:
        head = f.read(32)
    if head[:2] == b"\x80\x02" and _LEGACY_MAGIC in head:
        return
    raise CheckpointFileError(
        f"checkpoint {filename} is not a PyTorch checkpoint ({osp.getsize(filename)} bytes starting {head[:16]!r}; "
        f"torch.save writes a zip archive). Pass the .pth file that tools/train.py writes into its work dir "
        f"(epoch_<N>.pth / iter_<N>.pth), or download the file again if it is truncated")


def load_local_checkpoint(filename: str, map_location=None):
    """Load a local checkpoint with ``weights_only=True`` and :func:`safe_globals` allowed."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f"checkpoint not found: {filename}")
    check_torch_file(filename)
    try:
        with torch.serialization.safe_globals(safe_globals()):
            return torch.load(filename, map_location=map_location, weights_only=True)
    except Exception as err:
        if "weights_only" not in str(err) and "Unsupported global" not in str(err):
            raise CheckpointFileError(f"checkpoint {filename} could not be read: {err}") from err
        raise CheckpointFileError(
            f"checkpoint {filename} holds objects outside pc_kd's allowlist, so it was not loaded with "
            f"weights_only=True. If it comes from a source you trust, re-save it as a plain state dict "
            f"(torch.save({{'state_dict': sd}}, path)). Details: {err}") from err


class CheckpointMismatchError(CheckpointFileError):
    """A checkpoint whose weights do not fit the model the config builds (keys missing, unexpected or of another
    shape); the message lists them."""


def check_state_dict_matches(model: torch.nn.Module, state_dict: dict, filename: str,
                             skip_prefixes: tuple = ()) -> None:
    """Raise CheckpointMismatchError listing missing, unexpected and wrongly shaped keys when ``state_dict`` does not fit
    ``model`` (mmengine only warns, and a test run would then score a randomly initialised model). The model's keys
    under ``skip_prefixes`` are not expected (e.g. a classifier that is trained afresh)."""
    own = {k: v for k, v in model.state_dict().items() if not k.startswith(tuple(skip_prefixes))}
    state_dict = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(state_dict))
              if hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        for title, items in (("missing in checkpoint", missing), ("not in model", unexpected),
                             ("shape mismatch", shapes)):
            if items:
                parts.append(f"{title} ({len(items)}): " + "; ".join(items[:5]) + (" ..." if len(items) > 5 else ""))
        raise CheckpointMismatchError(f"checkpoint {filename} does not match the model built from the config: "
                         + " | ".join(parts) + ". Was it trained with another config?")


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, but ``put`` / ``put_text`` write a temp file and rename it, so a run
    killed while saving a checkpoint leaves the previous checkpoint intact and no truncated file."""

    def put(self, obj: bytes, filepath) -> None:
        with atomic_write(filepath) as tmp:
            with open(tmp, "wb") as f:
                f.write(obj)
                f.flush()
                os.fsync(f.fileno())

    def put_text(self, obj: str, filepath, encoding: str = "utf-8") -> None:
        self.put(obj.encode(encoding), filepath)


def setup_safe_checkpointing() -> None:
    """Load local checkpoints with weights_only=True (:func:`load_local_checkpoint`) and save them atomically
    (:class:`AtomicLocalBackend`). Idempotent; called by :func:`pc_kd.engine.build_runner`."""
    CheckpointLoader.register_scheme(prefixes="", loader=load_local_checkpoint, force=True)
    register_backend("local", AtomicLocalBackend, force=True, prefixes="")
    backend_instances.clear()
