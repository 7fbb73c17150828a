"""PartDistill on synthetic part-labelled shapes: a faulty synthetic 2D part-box predictor -> 3D knowledge units ->
a sparse-conv point student (forward distillation, then backward distillation: units re-scored by the student's
own labels), part mIoU on held-out shapes beside the teacher's vote and a supervised upper bound
(pc_kd.experiments.partdistill).

    python tools/demo_partdistill.py [--work-dir work_dirs/demo_partdistill] [--seeds 0 1 2] [--config CFG] [--no-tta]
    python tools/demo_partdistill.py --shapes-only   # only the shape sets (the Runner configs read them)

A rerun reuses the shape sets and every finished category and seed. Writes ``table.md``,
``result_seed<k>_<category>.json`` and ``pictures/`` into the work dir.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "partdistill" / "partdistill_spconv-unet_synthetic-box-predictor_synthetic-shapes.py"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pc-kd demo-partdistill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="work_dirs/demo_partdistill")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--config", default=str(CONFIG), help="a config with a settings dict (default: %(default)s)")
    parser.add_argument("--no-tta", action="store_true", help="skip the test-time rows (distilled on the test shapes)")
    parser.add_argument("--shapes-only", action="store_true",
                        help="only write the shape sets (training and test, every category) into the work dir: what "
                             "tools/train.py configs/partdistill/partdistill-*_synthetic-*.py reads")
    args = parser.parse_args(argv)
    from mmengine.config import Config

    from pc_kd.experiments import partdistill as pd

    settings = pd.Settings(**Config.fromfile(args.config).settings)
    if args.shapes_only:
        for path in pd.write_shape_sets(args.work_dir, settings):
            print(path)
        return 0
    result = pd.demo(args.work_dir, settings, args.seeds, tta=not args.no_tta)
    print(f"PartDistill, synthetic shapes: {settings.train_shapes} training shapes (seed {settings.train_seed}) and "
          f"{settings.test_shapes} test shapes (seed {settings.test_seed}) per category; part mIoU (IoU 1 for a part "
          f"absent from both), mean +- std over seeds {args.seeds}; every student is its last epoch")
    print(result["table"])
    print(f"pictures: {Path(args.work_dir) / 'pictures'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
