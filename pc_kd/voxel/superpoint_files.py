"""One super-point label file per scene: ``<out>/<points file stem>.npy`` (int64 ``[N]``, aligned with the points
file), written atomically and recorded in the manifest of ``<out>`` (:mod:`pc_kd.utils.manifest`); scenes recorded
with the same source and parameters are skipped, so an interrupted or sharded run resumes."""
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from pc_kd.utils.checks import check_finite_points
from pc_kd.utils.io import atomic_write, read_bin

from .segments import load_segment_file, scannet_mesh_segments
from .supervoxels import supervoxels

SOURCES = ("vccs", "scannet_segs", "file")


def superpoint_labels(points: np.ndarray, name: str, source: str = "vccs", voxel_size: float = 0.05,
                      seed_size: float = 0.45, region_growing: bool = False, segs_root: str = None,
                      segment_dir: str = None) -> np.ndarray:
    """Super-point ids ``[N]`` of the scene ``name`` with ``points [N, 3 + F]`` (xyz, then rgb when F >= 3).

    Sources: ``vccs`` (:func:`pc_kd.voxel.supervoxels`), ``scannet_segs`` (``<segs_root>/<name>/<name>_vh_clean_2.
    0.010000.segs.json``), ``file`` (``<segment_dir>/<name>.npy|.bin``).
    """
    if source == "vccs":
        colors = points[:, 3:6] if points.shape[1] >= 6 else None
        return supervoxels(points[:, :3], colors, voxel_size=voxel_size, seed_size=seed_size,
                           region_growing={} if region_growing else None)
    if source == "scannet_segs":
        if not segs_root:
            raise ValueError("super-points from scannet_segs need segs_root (the ScanNet scans/ folder)")
        return scannet_mesh_segments(Path(segs_root) / name / f"{name}_vh_clean_2.0.010000.segs.json", len(points))
    if source == "file":
        if not segment_dir:
            raise ValueError("super-points from files need segment_dir")
        found = [Path(segment_dir) / f"{name}{ext}" for ext in (".npy", ".bin")
                 if (Path(segment_dir) / f"{name}{ext}").exists()]
        if not found:
            raise FileNotFoundError(f"no segment file {Path(segment_dir) / name}.npy or .bin")
        return load_segment_file(found[0], len(points))
    raise ValueError(f"unknown super-point source {source!r}; expected one of {SOURCES}")


def superpoint_fingerprint(options: dict) -> str:
    """The source and its parameters (``superpoint_labels``' keyword arguments, defaults filled in)."""
    import inspect

    from pc_kd.utils.manifest import fingerprint

    defaults = {k: p.default for k, p in inspect.signature(superpoint_labels).parameters.items()
                if p.default is not inspect.Parameter.empty}
    return fingerprint(dict(defaults, **options))


def write_scene_superpoints(job: Tuple[str, str, int], out_dir: str, options: dict) -> str:
    """``job = (scene name, points file, values per point)``: write its label file; returns 'written'."""
    name, path, dims = job
    target = Path(out_dir) / f"{name}.npy"
    points = check_finite_points(read_bin(path, np.float32, dims, what="points file"), f"points file {path}")
    labels = superpoint_labels(points, name, **options)
    with atomic_write(target) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, labels.astype(np.int64))
    return "written"


def write_superpoints(jobs: Sequence[Tuple[str, str, int]], out_dir: str, workers: int = 1,
                      shard: Tuple[int, int] = (0, 1), **options) -> List[str]:
    """Write the label file of every scene in ``jobs`` (see :func:`write_scene_superpoints`) with ``workers``
    processes and a progress bar, recording each in the manifest of ``out_dir`` as process ``shard`` = (i, n) of
    a sharded run; ``options`` go to :func:`superpoint_labels`. Returns the outcomes, one per scene ("written"
    ones first, then "skipped": recorded with the same options and intact)."""
    from pc_kd.utils.manifest import SceneManifest

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    manifest = SceneManifest(out_dir, superpoint_fingerprint(options), shard)
    todo = [job for job in jobs if not manifest.is_done(job[0], f"{job[0]}.npy")]
    done = []
    if workers <= 1 or len(todo) <= 1:
        for job in tqdm(todo, desc="super-points"):
            done.append(write_scene_superpoints(job, out_dir, options))
            manifest.record(job[0], f"{job[0]}.npy")
    else:
        # spawn, not fork: a forked child of a process whose OpenMP / numba threads already ran can hang
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(write_scene_superpoints, job, out_dir, options): job for job in todo}
            for future in tqdm(as_completed(futures), total=len(futures), desc="super-points"):
                done.append(future.result())
                manifest.record(futures[future][0], f"{futures[future][0]}.npy")
    return done + ["skipped"] * (len(jobs) - len(todo))
