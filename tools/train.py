"""Train a pc_kd model from an mmengine config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CHECKPOINT | auto]] [--amp [float16|bfloat16]]
        [--cfg-options k=v ...]

``--resume`` continues from the latest checkpoint of the work dir and stops with an error when there is none;
``--resume auto`` resumes when there is one and starts afresh otherwise (for jobs that a scheduler restarts);
``--resume CHECKPOINT`` continues from that file. ``--amp`` trains in mixed precision on a CUDA GPU (float16
unless bfloat16 is named); ``--amp bfloat16`` without a GPU trains under CPU bfloat16 autocast (see
pc_kd.engine.mixed_precision). Ctrl-C stops with one line that gives the command to
continue.
"""
import argparse
import sys

from pc_kd.engine import (AMP_DTYPES, add_runner_args, build_runner, enable_amp, exit_on_user_error, load_config,
                          resume_settings)
from pc_kd.engine.runner import Interrupted, resume_command


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train a pc_kd model from a config (see configs/).")
    parser.add_argument("config", help="config file path, e.g. configs/supervised/<name>.py")
    parser.add_argument("--resume", nargs="?", const="latest", default=None, metavar="CHECKPOINT|auto",
                        help="continue training: alone, from the work dir's latest checkpoint (an error when there "
                             "is none); 'auto': from it when there is one, else from scratch; or from CHECKPOINT")
    parser.add_argument("--amp", nargs="?", const="float16", choices=AMP_DTYPES, default=None,
                        help="mixed-precision training on a CUDA GPU (AmpOptimWrapper, dynamic loss scale); "
                             "float16 unless bfloat16 is named; bfloat16 without a GPU: CPU autocast "
                             "(BFloat16OptimWrapper)")
    add_runner_args(parser)
    args = parser.parse_args(argv)
    cfg = load_config(args)
    if args.amp:
        enable_amp(cfg, args.amp)
    resume, load_from = resume_settings(args.resume, cfg.work_dir)
    if resume:
        cfg.resume, cfg.load_from = True, load_from
    runner = build_runner(cfg, args.config)
    try:
        runner.train()
    except KeyboardInterrupt:
        command = resume_command([sys.argv[0] if sys.argv[0].startswith("pc-kd") else f"python {sys.argv[0]}",
                                  *(sys.argv[1:] if argv is None else argv)])
        raise Interrupted(f"interrupted (Ctrl-C); the checkpoints so far are in {cfg.work_dir}; continue with: "
                          f"{command}") from None


if __name__ == "__main__":
    with exit_on_user_error():
        main()
