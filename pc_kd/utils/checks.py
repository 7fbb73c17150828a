"""Input checks that fail loudly with the field name and the expected shape."""
import numpy as np


class DataError(ValueError):
    """The user's data or the options given for it cannot work (the message says which file or field, and what
    to do); tools print it without a traceback."""


def check_transform(mat, field: str, shape=(4, 4)) -> np.ndarray:
    """Return ``mat`` as float64 after checking shape ``shape``, finiteness and (for square) invertibility.

    ``field`` names where the matrix came from (file and key) so that the message points at it.
    """
    arr = np.asarray(mat, dtype=np.float64)
    if arr.shape != tuple(shape):
        raise ValueError(f"{field}: expected a {shape[0]}x{shape[1]} matrix, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{field}: matrix has NaN or inf entries:\n{arr}")
    if arr.shape[0] == arr.shape[1]:
        cond = np.linalg.cond(arr)
        if not np.isfinite(cond) or cond > 1e12:
            raise ValueError(f"{field}: matrix is singular (condition number {cond:.3g}); expected an "
                             f"invertible transform:\n{arr}")
    return arr


def check_finite_points(points: np.ndarray, field: str, min_points: int = 1, ncols: int = 3) -> np.ndarray:
    """Check a ``[N, >=ncols]`` point array: enough points and finite xyz. Returns it unchanged."""
    if points.ndim != 2 or points.shape[1] < ncols:
        raise ValueError(f"{field}: expected points of shape [N, >={ncols}], got {points.shape}")
    if points.shape[0] < min_points:
        raise ValueError(f"{field}: point cloud is empty (expected at least {min_points} point)")
    bad = ~np.isfinite(points[:, :3]).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{field}: {int(bad.sum())} of {len(points)} points have NaN or inf coordinates "
                         f"(first at row {first}: {points[first, :3]}); clean the cloud or drop those rows")
    return points
