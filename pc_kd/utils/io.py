"""File helpers: atomic writes (temp file + rename) and readers that say what is wrong with a file."""
import contextlib
import os
import pickle
import tempfile
from pathlib import Path
from typing import Iterator, Union

import numpy as np

from .checks import check_transform

PathLike = Union[str, os.PathLike]


def require_file(path: PathLike, what: str = "file") -> Path:
    """Return ``path`` as a Path, or raise FileNotFoundError naming it and what it should have held."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _umask() -> int:
    """The process umask (read by setting it and putting it back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block finishes.

    An interrupted writer (exception, Ctrl-C, kill between write and rename) never leaves a half-written
    ``path`` behind: either the old file (or none) or the complete new one is there. The file gets the mode a
    plain ``open(path, "w")`` would give (0666 minus the umask), not the 0600 of a temporary file, so others
    on a shared machine can read it when the umask lets them.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def dump_pickle_atomic(obj, path: PathLike) -> Path:
    """Pickle ``obj`` to ``path`` atomically."""
    with atomic_write(path) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    return Path(path)


def save_npz_reproducible(path: PathLike, **arrays: np.ndarray) -> Path:
    """``np.savez`` (uncompressed, ``np.load`` reads it), atomically, with every member dated 1980-01-01 instead of
    the writing time, so the same arrays always give the same bytes (checksums in a manifest compare across runs
    and machines)."""
    import zipfile

    with atomic_write(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, array in arrays.items():
                member = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
                member.external_attr = 0o644 << 16
                with archive.open(member, "w", force_zip64=True) as f:
                    np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    return Path(path)


def load_pickle(path: PathLike, what: str = "info file"):
    path = require_file(path, what)
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
        raise ValueError(f"{what} {path} is not a readable pickle ({err}); rebuild it with "
                         f"tools/create_infos.py") from err


def read_bin(path: PathLike, dtype, row_size: int = 1, what: str = "binary file") -> np.ndarray:
    """Read a flat binary array of ``dtype`` and reshape it to ``[-1, row_size]`` (or ``[-1]`` for 1).

    Raises:
        FileNotFoundError: the file is missing.
        ValueError: its size is not a whole number of rows of ``row_size`` x ``dtype``.
    """
    path = require_file(path, what)
    itemsize = np.dtype(dtype).itemsize
    nbytes = path.stat().st_size
    if nbytes % (itemsize * row_size):
        raise ValueError(
            f"{what} {path}: {nbytes} bytes is not a multiple of the row size {row_size} x "
            f"{np.dtype(dtype).name} = {itemsize * row_size} bytes; check num_pts_feats / the dtype "
            f"or whether the file was truncated")
    data = np.fromfile(path, dtype=dtype)
    return data if row_size == 1 else data.reshape(-1, row_size)


def read_matrix_txt(path: PathLike, what: str = "matrix") -> np.ndarray:
    """Read a whitespace-separated 4x4 rigid or projective matrix (float64), checked finite and invertible."""
    path = require_file(path, what)
    try:
        mat = np.loadtxt(path, dtype=np.float64)
    except ValueError as err:
        raise ValueError(f"{what} {path}: not a whitespace-separated numeric matrix ({err})") from err
    return check_transform(mat, f"{what} {path}")
