"""Drive&Segment on synthetic driving frames: LiDAR segment proposals -> masked crops through a label-free backbone
-> k-means into more clusters than classes -> pseudo-label images -> a 2D student; scored on frames of another seed
(one Hungarian matching over the split; strict: unmatched clusters count wrong) beside k-means on pixel colours, a
random network's features and the student trained on GT labels (pc_kd.experiments.drive_segment).

    python tools/demo_drive_segment.py [--work-dir work_dirs/demo_drive_segment] [--seeds 0 1 2] [--config CFG]
    python tools/demo_drive_segment.py --real [--real-data DIR]    (the real nuScenes frames, one seed)

A rerun reuses the rendered frames and every finished seed. Writes ``table.md``, ``rows_seed<k>.json``,
``pictures/`` and ``pseudo_label_dataset/`` (the first seed's pseudo-label images: what
configs/drive_and_segment/drive-segment-student_tinysegnet_synthetic-driving.py trains on with tools/train.py) into
the work dir.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "drive_and_segment" / "drive-segment_tinysegnet-contrastive_synthetic-driving.py"
STUDENT_CONFIG = ROOT / "configs" / "drive_and_segment" / "drive-segment-student_tinysegnet_synthetic-driving.py"
DEFAULT_WORK_DIR = "work_dirs/demo_drive_segment"
REAL_CONFIG = ROOT / "configs" / "drive_and_segment" / "drive-segment_espnetv2-city_nuscenes-2scenes.py"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pc-kd demo-drive-segment", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default=DEFAULT_WORK_DIR)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--config", default=str(CONFIG), help="a config with a settings dict (default: %(default)s)")
    parser.add_argument("--real", action="store_true",
                        help="instead: the REAL nuScenes frames of $PC_KD_REAL_DATA (scene-0523 -> scene-0916) with "
                             "the ESPNetv2 Cityscapes encoder as the backbone (--config defaults to the nuScenes one)")
    parser.add_argument("--real-data", default=None, help="the real-data folder (default: $PC_KD_REAL_DATA)")
    parser.add_argument("--backbone", default=None,
                        help="the label-free backbone's weights (default: checkpoints/tinysegnet_contrastive_synthetic-"
                             "driving.pth; trained and written there when absent)")
    args = parser.parse_args(argv)
    from mmengine.config import Config

    from pc_kd.experiments import drive_segment as ds

    if args.real:
        import os

        from pc_kd.experiments import drive_segment_real as dr

        real = args.real_data or os.environ.get("PC_KD_REAL_DATA")
        if not real or not (Path(real) / "nuscenes_2scenes").is_dir():
            print("error: --real needs the real-data folder: pass --real-data DIR or set PC_KD_REAL_DATA (its "
                  "nuscenes_2scenes/ and teachers/ are read)", file=sys.stderr)
            return 1
        config = REAL_CONFIG if args.config == str(CONFIG) else args.config
        settings = ds.Settings(**Config.fromfile(config).settings)
        result = dr.demo_real(real, args.work_dir, settings, args.seeds[0])
        print(f"Drive&Segment, REAL nuScenes: trained on scene-0523 (40 key frames, 6 cameras), scored on "
              f"scene-0916's {result['pixels']} labelled pixels (LiDAR points in boxes, road points); backbone: "
              f"ESPNetv2 trained WITH Cityscapes labels, so not label-free; seed {args.seeds[0]}")
        print(result["table"])
        return 0
    settings = ds.Settings(**Config.fromfile(args.config).settings)
    result = ds.demo(args.work_dir, settings, args.seeds, Path(args.backbone) if args.backbone else ds.BACKBONE)
    print(f"Drive&Segment, synthetic driving: trained on {settings.train_frames} frames of seed "
          f"{settings.train_seed}, scored on {settings.test_frames} frames of seed {settings.test_seed}; mean +- std "
          f"over seeds {args.seeds}")
    print(result["table"])
    data = Path(args.work_dir) / ds.PSEUDO_LABEL_DATASET
    moved = "" if args.work_dir == DEFAULT_WORK_DIR else " --cfg-options " + " ".join(
        f"{loader}.dataset.data_root={data}" for loader in ("train_dataloader", "val_dataloader", "test_dataloader"))
    print(f"\nThe student in the Runner, on seed {args.seeds[0]}'s pseudo-labels (written to {data}):\n"
          f"    python tools/train.py {STUDENT_CONFIG.relative_to(ROOT)}{moved}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
