"""Evaluate a trained checkpoint on the config's test set.

    python tools/test.py CONFIG CHECKPOINT [--out DIR] [--show-dir DIR] [--work-dir DIR] [--cfg-options k=v ...]

``--out DIR`` writes each sample's prediction (segmentation: ``<scene>.npy``, a label per point; detection:
``<sample>.npz`` with boxes, scores, labels) and ``metrics.json`` (see pc_kd.engine.SavePredictionsHook);
``--show-dir DIR`` a top-view picture per sample, prediction beside the ground truth (PredictionPicturesHook).
Both folders are checked to be writable before the model runs. The log goes beside the checkpoint (its folder)
unless ``--work-dir`` names another.

The checkpoint must match the model the config builds (keys and shapes), else the run stops with the list
of differences instead of scoring a partly random model.
"""
import argparse
import os
import os.path as osp

from pc_kd.engine import add_runner_args, build_runner, exit_on_user_error, load_config, load_weights_strict
from pc_kd.engine.checkpoint import check_torch_file
from pc_kd.engine.runner import check_writable_folder


def main(argv=None):
    parser = argparse.ArgumentParser(description="Score a trained checkpoint on the test set of its config "
                                                 "(the config's test_evaluator: mIoU, nuScenes mAP / NDS ...).")
    parser.add_argument("config", help="the config the checkpoint was trained with, e.g. configs/supervised/<name>.py")
    parser.add_argument("checkpoint", help="checkpoint file (.pth) written by tools/train.py")
    parser.add_argument("--out", help="folder for per-sample predictions (.npy / .npz) and metrics.json")
    parser.add_argument("--show-dir", help="folder for a top-view picture per sample: prediction beside the "
                                           "ground truth")
    add_runner_args(parser)
    args = parser.parse_args(argv)
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f"checkpoint not found: {args.checkpoint}")
    check_torch_file(args.checkpoint)
    for folder, option in ((args.out, "--out"), (args.show_dir, "--show-dir")):
        if folder:
            check_writable_folder(folder, option)
    beside = osp.dirname(osp.abspath(args.checkpoint))
    if not args.work_dir and os.access(beside, os.W_OK):
        args.work_dir = beside  # the test log beside the checkpoint it scores
    cfg = load_config(args)
    cfg.load_from, cfg.resume = None, False
    if args.out:
        cfg.custom_hooks = list(cfg.get("custom_hooks", None) or []) + [
            dict(type="pc_kd.SavePredictionsHook", out_dir=args.out)]
    if args.show_dir:
        cfg.custom_hooks = list(cfg.get("custom_hooks", None) or []) + [
            dict(type="pc_kd.PredictionPicturesHook", num_samples=-1, out_dir=args.show_dir, stages=("test",))]
    runner = build_runner(cfg, args.config)
    load_weights_strict(runner, args.checkpoint)
    runner._has_loaded = True  # weights are in: keep Runner.test from loading load_from again
    return runner.test()


if __name__ == "__main__":
    with exit_on_user_error():
        main()
