"""Write one super-point label file per scene of a dataset config.

    python tools/make_superpoints.py CONFIG [--split train|val|test] [--out DIR] [--workers N]
        [--source vccs|scannet_segs|file] [--voxel-size 0.05] [--seed-size 0.45] [--region-growing]
        [--segs-root DIR] [--segment-dir DIR]

Reads the scenes of ``<split>_dataloader.dataset`` (points and colours from their files), writes
``<out>/<points file stem>.npy`` (int64 ``[N]``, aligned with the points file) atomically, skips scenes whose file
exists (so an interrupted run resumes), and runs scenes in parallel with a progress bar.
Sources: ``vccs`` (pc_kd.voxel.supervoxels), ``scannet_segs`` (``<segs-root>/<scene>/<scene>_vh_clean_2.0.
010000.segs.json``), ``file`` (``<segment-dir>/<scene>.npy|.bin``).
"""
import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from mmengine.config import Config
from tqdm import tqdm


def scene_jobs(cfg, split: str):
    """(scene name = points file stem, points path, num_pts_feats) of every scene of the split's dataset."""
    from mmengine.registry import init_default_scope

    from pc_kd.registry import DATASETS

    init_default_scope(cfg.get("default_scope", "pc_kd"))
    ds_cfg = cfg[f"{split}_dataloader"]["dataset"].copy()
    ds_cfg["pipeline"] = []
    dataset = DATASETS.build(ds_cfg)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    return [(Path(info["lidar_path"]).stem, info["lidar_path"], info["num_pts_feats"]) for info in infos]


def make_one(job, out_dir: str, options: dict) -> str:
    from pc_kd.utils.checks import check_finite_points
    from pc_kd.utils.io import atomic_write, read_bin
    from pc_kd.voxel import load_segment_file, scannet_mesh_segments, supervoxels

    name, path, dims = job
    target = Path(out_dir) / f"{name}.npy"
    if target.exists():
        return "skipped"
    points = check_finite_points(read_bin(path, np.float32, dims, what="points file"), f"points file {path}")
    source = options["source"]
    if source == "vccs":
        colors = points[:, 3:6] if dims >= 6 else None
        labels = supervoxels(points[:, :3], colors, voxel_size=options["voxel_size"],
                             seed_size=options["seed_size"], region_growing={} if options["region_growing"] else None)
    elif source == "scannet_segs":
        labels = scannet_mesh_segments(Path(options["segs_root"]) / name / f"{name}_vh_clean_2.0.010000.segs.json",
                                       len(points))
    else:
        folder = Path(options["segment_dir"])
        found = [folder / f"{name}{ext}" for ext in (".npy", ".bin") if (folder / f"{name}{ext}").exists()]
        if not found:
            raise FileNotFoundError(f"no segment file {folder / name}.npy or .bin")
        labels = load_segment_file(found[0], len(points))
    with atomic_write(target) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, labels.astype(np.int64))
    return "written"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--split", default="train", choices=["train", "val", "test"])
    parser.add_argument("--out", help="output folder (default: <data_root>/superpoints)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--source", default="vccs", choices=["vccs", "scannet_segs", "file"])
    parser.add_argument("--voxel-size", type=float, default=0.05)
    parser.add_argument("--seed-size", type=float, default=0.45)
    parser.add_argument("--region-growing", action="store_true", help="merge large planar regions (S3DIS)")
    parser.add_argument("--segs-root", help="scannet_segs: the ScanNet scans/ folder")
    parser.add_argument("--segment-dir", help="file: folder of <scene>.npy|.bin segment files")
    args = parser.parse_args(argv)
    if args.source == "scannet_segs" and not args.segs_root:
        parser.error("--source scannet_segs needs --segs-root (the ScanNet scans/ folder)")
    if args.source == "file" and not args.segment_dir:
        parser.error("--source file needs --segment-dir")
    cfg = Config.fromfile(args.config)
    jobs = scene_jobs(cfg, args.split)
    out = args.out or os.path.join(cfg[f"{args.split}_dataloader"]["dataset"].get("data_root", "."), "superpoints")
    Path(out).mkdir(parents=True, exist_ok=True)
    options = dict(source=args.source, voxel_size=args.voxel_size, seed_size=args.seed_size,
                   region_growing=args.region_growing, segs_root=args.segs_root, segment_dir=args.segment_dir)
    print(f"super-points ({args.source}) for {len(jobs)} scenes -> {out} ({args.workers} workers)")
    results = []
    if args.workers <= 1:
        results = [make_one(job, out, options) for job in tqdm(jobs, desc="super-points")]
    else:
        with ProcessPoolExecutor(args.workers) as pool:
            futures = [pool.submit(make_one, job, out, options) for job in jobs]
            results = [f.result() for f in tqdm(futures, desc="super-points")]
    print(f"written {results.count('written')}, already there {results.count('skipped')}")
    return results


if __name__ == "__main__":
    main()
