"""Cross-modal masked point modelling on synthetic objects: ACT and ReCon pretrain a point transformer from a 2D
teacher (a tiny depth ViT pretrained without labels) on unlabelled shapes of six classes; a linear SVM on frozen
features of six OTHER classes scores them beside a D2 shape histogram, the raw 2D teacher, a random-init encoder
and reconstruction alone (Point-MAE) (pc_kd.experiments.masked_pretraining).

    python tools/demo_pretrain.py [--work-dir work_dirs/demo_pretrain] [--seeds 0 1 2] [--config CFG ...]
    python tools/demo_pretrain.py --make-teacher     # re-make the shipped 2D teacher (checkpoints/)

Each config (a ``settings`` dict) names the methods it runs; the default runs configs/recon/ then configs/act/.
A rerun skips every finished method and seed. Writes ``table.md``, ``results.json``, the pretrained weights and
``pictures/recon_masked_groups.png`` into the work dir.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / "configs" / "recon" / "recon_point-transformer_depth-vit-mae_synthetic-objects.py",
           ROOT / "configs" / "act" / "act_point-transformer_depth-vit-mae_synthetic-objects.py"]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="pc-kd demo-pretrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="work_dirs/demo_pretrain")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--config", nargs="+", default=[str(c) for c in CONFIGS],
                        help="configs with a settings dict (default: %(default)s)")
    parser.add_argument("--make-teacher", action="store_true",
                        help="MAE-pretrain the 2D depth ViT on renders of other pool-class objects and write it and "
                             "the category text embeddings to checkpoints/ (about 1.5 minutes on 2 cores)")
    args = parser.parse_args(argv)
    from mmengine.config import Config

    from pc_kd.experiments import masked_pretraining as mp

    settings = [mp.Settings(**Config.fromfile(c).settings) for c in args.config]
    if args.make_teacher:
        print(mp.write_text_embeddings(dim=settings[0].text_dim))
        print(mp.train_depth_teacher(settings[0]))
        return 0
    for s in settings:
        result = mp.demo(args.work_dir, s, args.seeds)
    print(f"Masked point modelling, synthetic objects: pretrained on {result['pool_shapes']} unlabelled shapes of "
          f"{', '.join(mp.POOL_CLASSES)}; linear SVM (C = 0.075) on {', '.join(mp.PROBE_CLASSES)}; overall accuracy, "
          f"mean +- std over seeds {args.seeds}")
    print(result["table"])
    print(f"picture: {Path(args.work_dir) / 'pictures' / 'recon_masked_groups.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
