"""Train a pc_kd model from an mmengine config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT]] [--amp] [--cfg-options k=v ...]
"""
import argparse

from pc_kd.engine import add_runner_args, build_runner, load_config


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train a pc_kd model")
    parser.add_argument("config", help="config file path")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="resume from CHECKPOINT, or from the latest checkpoint in the work dir if none given")
    parser.add_argument("--amp", action="store_true", help="mixed-precision training")
    add_runner_args(parser)
    args = parser.parse_args(argv)
    cfg = load_config(args)
    if args.amp:
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.setdefault("loss_scale", "dynamic")
    if args.resume == "auto":
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    build_runner(cfg, args.config).train()


if __name__ == "__main__":
    main()
