"""Writers shared by the converters and the synthetic generators (every file written atomically)."""
from pathlib import Path

import numpy as np
from PIL import Image

from pc_kd.utils.io import atomic_write


def save_array(array: np.ndarray, path, dtype) -> Path:
    """Write ``array`` as raw ``dtype`` bytes (the ``.bin`` layout of mmdet3d) atomically."""
    with atomic_write(path) as tmp:
        np.ascontiguousarray(array, dtype=dtype).tofile(tmp)
    return Path(path)


def save_image(array: np.ndarray, path, **kwargs) -> Path:
    """Write an image (uint8 RGB / uint8 or uint16 gray) atomically; the format follows the suffix."""
    path = Path(path)
    with atomic_write(path) as tmp:
        Image.fromarray(array).save(tmp, format={".jpg": "JPEG", ".png": "PNG"}[path.suffix.lower()], **kwargs)
    return path


def save_matrix(mat: np.ndarray, path) -> Path:
    with atomic_write(path) as tmp:
        np.savetxt(tmp, np.asarray(mat, dtype=np.float64), fmt="%.9f")
    return Path(path)


def write_point_scene(out_dir, name: str, points: np.ndarray, semantic: np.ndarray = None,
                      instance: np.ndarray = None) -> dict:
    """Write ``points/<name>.bin`` (float32 [N, C]) and the int64 masks; return the info fields for them.

    The points file is written last, so its presence marks a complete scene (resumable generation).
    """
    out_dir = Path(out_dir)
    entry = {"lidar_points": {"lidar_path": f"{name}.bin", "num_pts_feats": int(points.shape[1])}}
    if semantic is not None:
        save_array(semantic, out_dir / "semantic_mask" / f"{name}.bin", np.int64)
        entry["pts_semantic_mask_path"] = f"{name}.bin"
    if instance is not None:
        save_array(instance, out_dir / "instance_mask" / f"{name}.bin", np.int64)
        entry["pts_instance_mask_path"] = f"{name}.bin"
    save_array(points, out_dir / "points" / f"{name}.bin", np.float32)
    return entry


def resumable_entry(out_dir, name: str, convert):
    """Return the info entry of scene ``name``: from ``out_dir/.entries/<name>.pkl`` when an earlier run
    finished it, else ``convert()`` (which writes the scene's files) and then store the entry atomically.
    Re-running an interrupted conversion therefore redoes only the unfinished scenes."""
    from pc_kd.utils.io import dump_pickle_atomic, load_pickle

    done = Path(out_dir) / ".entries" / f"{name}.pkl"
    if done.is_file():
        return load_pickle(done, "converted-scene record")
    entry = convert()
    dump_pickle_atomic(entry, done)
    return entry
