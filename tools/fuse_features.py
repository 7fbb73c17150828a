"""Fuse a frozen 2D teacher's features into every scene's points, once, offline.

    python tools/fuse_features.py CONFIG [--split train] [--out DIR] [--shard i/n] [--device cuda]
        [--on-missing fail|skip] [--verify]

The config's ``fusion`` dict names the teacher and the options of ``pc_kd.projection.fuse_scene``
(``teacher``, ``frame_step``, ``border``, ``visibility``, ``depth_tol``, ``zbuffer_radius``, ``batch_frames``,
``out_dir``). Each scene becomes ``<out>/<points file stem>.npz`` with ``feats`` (float16 ``[N, C]``) and
``count`` (int32 ``[N]``), written atomically and recorded in ``<out>/manifest/`` (file, size, sha256, teacher /
config fingerprint). Scenes recorded with this teacher and config are skipped (resume by re-running);
``--shard i/n`` (or RANK / WORLD_SIZE under torchrun, SLURM_PROCID / SLURM_NTASKS under srun) takes every n-th
scene. ``--verify`` lists the split's missing, corrupt and stale scenes and exits 1 if there are any. Ends with
the coverage: the share of points seen by at least one frame.
"""
import argparse
import sys
from pathlib import Path

import torch

from pc_kd.engine.config_checks import add_config_options, load_checked_config


def build_teacher(cfg):
    from mmengine.registry import init_default_scope

    import pc_kd.models  # noqa: F401  (registers the teachers)
    from pc_kd.registry import MODELS

    init_default_scope(cfg.get("default_scope", "pc_kd"))
    return MODELS.build(cfg.fusion["teacher"])


def build_dataset(cfg, split):
    from pc_kd.registry import DATASETS

    ds_cfg = cfg[f"{split}_dataloader"]["dataset"].copy()
    ds_cfg["pipeline"] = []
    ds_cfg["check_images"] = False  # missing frames are reported per scene below
    return DATASETS.build(ds_cfg)


def main(argv=None):
    from pc_kd.projection import fuse_dataset
    from pc_kd.projection.fusion import fusion_fingerprint
    from pc_kd.utils.manifest import add_shard_options, report_verification, shard_from_args

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="a distillation config with a fusion dict (teacher, frame_step, ...)")
    parser.add_argument("--split", default="train", choices=["train", "val", "test"], help="which dataloader's scenes")
    parser.add_argument("--out", help="output folder (default: the config's fusion.out_dir)")
    parser.add_argument("--device", default=None, help="torch device for the teacher (default: cuda if available)")
    parser.add_argument("--on-missing", default="fail", choices=["fail", "skip"],
                        help="a scene without readable frames or poses: stop (fail) or log and go on (skip)")
    add_shard_options(parser)
    add_config_options(parser)
    args = parser.parse_args(argv)
    shard, shards = shard_from_args(parser, args)
    cfg = load_checked_config(args.config, args.cfg_options)
    if "fusion" not in cfg:
        raise KeyError(f"config {args.config} has no 'fusion' dict (teacher, frame_step, ...)")
    options = {k: v for k, v in cfg.fusion.items() if k not in ("teacher", "out_dir")}
    out = Path(args.out or cfg.fusion.get("out_dir", "fused"))
    fingerprint = fusion_fingerprint(cfg.fusion["teacher"], options)
    if args.verify:
        dataset = build_dataset(cfg, args.split)
        scenes = [Path(dataset.get_data_info(i)["lidar_path"]).stem for i in range(len(dataset))]
        sys.exit(report_verification(out, scenes, ".npz", fingerprint))
    # the teacher first: a missing package or weights file stops the run before the dataset is read
    teacher = build_teacher(cfg).to(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    dataset = build_dataset(cfg, args.split)
    infos = [dataset.get_data_info(i) for i in range(shard, len(dataset), shards)]
    result = fuse_dataset(teacher, infos, out, on_missing=args.on_missing, device=args.device,
                          desc=f"fusing shard {shard}/{shards}", fingerprint=fingerprint, shard=(shard, shards),
                          **options)
    written, missing = result["written"], result["missing"]
    print(f"fused {written} scenes, {result['skipped']} already there, {len(missing)} skipped for missing frames "
          f"{missing if missing else ''}in {result['seconds']:.1f} s ({written / max(result['seconds'], 1e-9):.2f} "
          f"scenes/s); coverage: {result['coverage'] * 100:.1f} % of the points seen by >= 1 frame")
    return result


if __name__ == "__main__":
    from pc_kd.engine import exit_on_user_error

    with exit_on_user_error():
        main()
