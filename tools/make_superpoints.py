"""Write one super-point label file per scene of a dataset config.

    python tools/make_superpoints.py CONFIG [--split train|val|test] [--out DIR] [--workers N] [--shard i/n]
        [--source vccs|scannet_segs|file] [--voxel-size 0.05] [--seed-size 0.45] [--region-growing]
        [--segs-root DIR] [--segment-dir DIR] [--verify]

Reads the scenes of ``<split>_dataloader.dataset`` (points and colours from their files) and calls
``pc_kd.voxel.write_superpoints``: ``<out>/<points file stem>.npy`` (int64 ``[N]``, aligned with the points file)
written atomically and recorded in ``<out>/manifest/`` (size, sha256, source fingerprint); scenes recorded with the
same source and parameters are skipped (so an interrupted run resumes), scenes in parallel with a progress bar.
``--shard i/n`` (or RANK / WORLD_SIZE under torchrun, SLURM_PROCID / SLURM_NTASKS under srun) takes every n-th
scene; ``--verify`` lists the split's missing, corrupt and stale scenes and exits 1 if there are any. Sources: ``vccs`` (pc_kd.voxel.supervoxels), ``scannet_segs`` (``<segs-root>/<scene>/<scene>_vh_
clean_2.0.010000.segs.json``), ``file`` (``<segment-dir>/<scene>.npy|.bin``).
"""
import argparse
import os
import sys
from pathlib import Path

from pc_kd.engine.config_checks import add_config_options, load_checked_config


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


def main(argv=None):
    from pc_kd.utils.manifest import add_shard_options, report_verification, shard_from_args
    from pc_kd.voxel import write_superpoints
    from pc_kd.voxel.superpoint_files import superpoint_fingerprint

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="the config whose dataset holds the scenes")
    parser.add_argument("--split", default="train", choices=["train", "val", "test"],
                        help="which dataloader's scenes")
    parser.add_argument("--out", help="output folder (default: the config's superpoint_dir, else <data_root>/superpoints)")
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="processes (default: half the CPUs)")
    parser.add_argument("--source", default="vccs", choices=["vccs", "scannet_segs", "file"],
                        help="vccs: computed here; scannet_segs: ScanNet's own segments; file: your own")
    parser.add_argument("--voxel-size", type=float, default=0.05, help="vccs voxel size (m)")
    parser.add_argument("--seed-size", type=float, default=0.45, help="vccs seed spacing (m)")
    parser.add_argument("--region-growing", action="store_true", help="merge large planar regions (S3DIS)")
    parser.add_argument("--segs-root", help="scannet_segs: the ScanNet scans/ folder")
    parser.add_argument("--segment-dir", help="file: folder of <scene>.npy|.bin segment files")
    add_shard_options(parser)
    add_config_options(parser)
    args = parser.parse_args(argv)
    if args.source == "scannet_segs" and not args.segs_root:
        parser.error("--source scannet_segs needs --segs-root (the ScanNet scans/ folder)")
    if args.source == "file" and not args.segment_dir:
        parser.error("--source file needs --segment-dir")
    shard, shards = shard_from_args(parser, args)
    cfg = load_checked_config(args.config, args.cfg_options)
    jobs = scene_jobs(cfg, args.split)
    out = args.out or cfg.get("superpoint_dir") or os.path.join(
        cfg[f"{args.split}_dataloader"]["dataset"].get("data_root", "."), "superpoints")
    options = dict(source=args.source, voxel_size=args.voxel_size, seed_size=args.seed_size,
                   region_growing=args.region_growing, segs_root=args.segs_root, segment_dir=args.segment_dir)
    if args.verify:
        sys.exit(report_verification(out, [job[0] for job in jobs], ".npy", superpoint_fingerprint(options)))
    jobs = jobs[shard::shards]
    print(f"super-points ({args.source}) for {len(jobs)} scenes -> {out} ({args.workers} workers, shard "
          f"{shard}/{shards})")
    results = write_superpoints(jobs, out, args.workers, shard=(shard, shards), **options)
    print(f"written {results.count('written')}, already there {results.count('skipped')}")
    return results


if __name__ == "__main__":
    from pc_kd.engine import exit_on_user_error

    with exit_on_user_error():
        main()
