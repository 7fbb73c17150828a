"""Score a nuScenes results JSON against the devkit's tables, as the devkit's DetectionEval scores it.

    python tools/eval_nuscenes.py RESULTS.json --root data/nuscenes --version v1.0-trainval \
        [--scenes scene-0916 ...] [--out metrics.json] [--devkit]

Ground truth, ego positions and bike racks come from the tables under ``--root/--version`` (no sample file is
read); all 10 detection classes are scored with the devkit's class ranges and filters (LiDAR + radar points,
bike racks). ``--out`` writes the devkit's ``metrics_summary.json`` keys; ``--devkit`` also runs the devkit's
``DetectionEval`` on the same boxes (a table copy of ``--scenes`` when given) and prints both summaries and
their largest difference.
"""
import argparse
import json
import time
from pathlib import Path

from pc_kd.engine import ConfigError, exit_on_user_error


def main(argv=None):
    from pc_kd.evaluation.nuscenes_tables import (devkit_eval, format_summary, largest_difference, metrics_summary,
                                                  open_tables, score_results)
    from pc_kd.utils.io import atomic_write

    parser = argparse.ArgumentParser(prog="pc-kd eval-nuscenes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="nuScenes results JSON ({'meta': ..., 'results': {sample_token: [box]}})")
    parser.add_argument("--root", required=True, help="folder that holds VERSION/ (the devkit's tables)")
    parser.add_argument("--version", default="v1.0-trainval", help="tables folder name (v1.0-trainval, v1.0-mini)")
    parser.add_argument("--scenes", nargs="+", help="score these scenes only (default: every scene of the tables)")
    parser.add_argument("--out", help="write the devkit's metrics_summary.json keys here")
    parser.add_argument("--devkit", action="store_true", help="also run the devkit's DetectionEval and compare")
    args = parser.parse_args(argv)
    try:
        nusc = open_tables(args.root, args.version)
        start = time.perf_counter()
        summary = metrics_summary(score_results(nusc, args.results, args.scenes))
        summary["eval_time"] = time.perf_counter() - start
        print(format_summary(summary) + f"\nEval time: {summary['eval_time']:.1f}s")
        if args.out:
            with atomic_write(Path(args.out)) as tmp:
                Path(tmp).write_text(json.dumps(summary, indent=2))
            print(f"metrics summary: {args.out}")
        if args.devkit:
            devkit = devkit_eval(args.root, args.version, args.results, args.scenes)
            print("\nThe devkit's DetectionEval on the same boxes:\n" + format_summary(devkit))
            print(f"largest difference between the two, over every number above: "
                  f"{largest_difference(summary, devkit):.3g}")
    except ValueError as err:  # a results file or scene list that cannot be scored: one line, no traceback
        raise ConfigError(str(err)) from None
    return summary


if __name__ == "__main__":
    with exit_on_user_error():
        main()
