"""Real nuScenes, end to end: two real scenes converted from the devkit's tables, the LiDAR, camera and fusion
detectors trained on scene-0523 (Boston, 40 key frames) and scored on scene-0916 (Singapore, 41), the LiDAR
detector also on the scene it trained on, beside random boxes and the GT boxes; every row scored by pc_kd's metric
and by the devkit's DetectionEval on the tables restricted to the scored scene. For the camera detector also the
depth net against LiDAR depth on scene-0916 beside a per-row mean-depth baseline.

    python tools/demo_real.py --work-dir work_dirs/demo_real [--nuscenes-root DIR] [--detectors lidar camera fusion]

``--nuscenes-root`` defaults to $PC_KD_REAL_DATA/nuscenes_2scenes. A rerun reuses every finished training run.
Writes ``table.md``, ``result.json`` and the pictures (``pictures/``) into the work dir.
"""
import argparse
import json
import os
import time
from pathlib import Path


def main(argv=None):
    from mmengine.logging import print_log

    from pc_kd.evaluation.nuscenes_tables import open_tables
    from pc_kd.experiments import real_nuscenes as real
    from pc_kd.utils.io import atomic_write

    parser = argparse.ArgumentParser(prog="pc-kd demo-real", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", default="work_dirs/demo_real")
    parser.add_argument("--nuscenes-root", default=None,
                        help="the nuScenes folder (v1.0-trainval/, samples/) of the two scenes (default: "
                             "$PC_KD_REAL_DATA/nuscenes_2scenes)")
    parser.add_argument("--detectors", nargs="+", default=list(real.CONFIGS), choices=list(real.CONFIGS))
    parser.add_argument("--iters", type=int, default=None,
                        help="train each detector this many iterations instead of its config's schedule (a quick look)")
    parser.add_argument("--select", action="store_true",
                        help="instead: how the LiDAR detector's iteration count was chosen, on scene-0523 alone (its "
                             "first 30 frames trained on, checkpoints scored on its last 10)")
    parser.add_argument("--select-depth", action="store_true",
                        help="instead: how the camera depth net's ray encoding was chosen, on scene-0523 alone (the "
                             "camera config trained on its first 30 frames without and with rays, 500 iterations, "
                             "the depth net scored on its last 10)")
    args = parser.parse_args(argv)
    root = args.nuscenes_root
    if root is None:
        if not os.environ.get("PC_KD_REAL_DATA"):
            raise FileNotFoundError("no nuScenes folder: pass --nuscenes-root <folder with v1.0-trainval/ and "
                                    "samples/> or set PC_KD_REAL_DATA (its nuscenes_2scenes/ is used)")
        root = Path(os.environ["PC_KD_REAL_DATA"]) / "nuscenes_2scenes"
    root, work = Path(root).resolve(), Path(args.work_dir)
    nusc = open_tables(root, real.VERSION)
    print_log(f"demo-real: converting {real.TRAIN_SCENE} (train) and {real.VAL_SCENE} (val) from {root}", "current")
    real.convert(root, work / "infos")
    if args.select:
        return select(real, root, nusc, work, args.iters or 2000)
    if args.select_depth:
        return select_depth(real, root, work, args.iters or 500)
    rows, runners, runs, depth = [], {}, {}, None
    for name in args.detectors:
        run_dir = work / name
        print_log(f"demo-real: {name} detector ({real.CONFIGS[name]}) -> {run_dir}", "current")
        runner, runs[name] = real.train_or_reuse(real.CONFIGS[name], run_dir,
                                                 real.run_options(root, work / "infos", run_dir), name, args.iters)
        runners[name] = runner
        scenes = [("train", real.TRAIN_SCENE), ("val", real.VAL_SCENE)] if name == "lidar" else [("val", real.VAL_SCENE)]
        for split, scene in scenes:
            start = time.perf_counter()
            path = real.predict_results(runner, split, run_dir / f"results_{scene}.json")
            runs[name][f"predict_s_{scene}"] = time.perf_counter() - start
            rows.append(dict(name=f"{name} detector", scene=scene, **real.score_both(root, nusc, path, scene)))
        if name == "camera":
            depth = real.depth_scores(runner)
    for key, path in real.reference_results(nusc, real.VAL_SCENE, real.TRAIN_SCENE, work / "reference").items():
        rows.append(dict(name=key, scene=real.VAL_SCENE, **real.score_both(root, nusc, path, real.VAL_SCENE)))
    files = real.pictures(runners, nusc, work / "pictures")
    table = real.format_table(rows, depth)
    lines = [f"{name}: {run['iters']} iterations at batch {run['batch_size']}" +
             (f", trained in {run['train_s'] / 60:.1f} min" if run.get("train_s") else "") +
             (" (reused)" if run.get("reused") else "") for name, run in runs.items()]
    report = table + "\n\n" + "\n".join(lines) + "\n"
    with atomic_write(work / "table.md") as tmp:
        Path(tmp).write_text(report)
    with atomic_write(work / "result.json") as tmp:
        Path(tmp).write_text(json.dumps(dict(rows=rows, depth=depth, runs=runs, pictures=[str(f) for f in files]),
                                        indent=1, default=float))
    print(report)
    print("pictures:\n" + "\n".join(f"  {f}" for f in files))
    print(f"table: {work / 'table.md'}; every number: {work / 'result.json'}")
    return rows


def _report(path, title, header, rows):
    """A markdown table under ``title``, written atomically to ``path`` and printed."""
    from pc_kd.utils.io import atomic_write

    lines = [title, "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    report = "\n".join(lines) + "\n"
    with atomic_write(path) as tmp:
        Path(tmp).write_text(report)
    print(report)


def select(real, root, nusc, work, iters):
    """The iteration-count choice on scene-0523's time split (see --select); prints and writes select.md."""
    checkpoints = [iters // 4, iters // 2, 3 * iters // 4, iters]
    scores = real.select_on_train_scene(root, nusc, work / "infos", work / "select", iters, checkpoints)
    rows = [[it, *(f"{v:.3f}" for v in (p["held_out"]["mean_ap"], p["held_out"]["mean_dist_aps"]["car"],
                                        p["held_out"]["nd_score"], p["fitted"]["mean_ap"],
                                        p["fitted"]["mean_dist_aps"]["car"]))] for it, p in scores.items()]
    _report(work / "select.md", f"LiDAR detector trained on the first 30 frames of {real.TRAIN_SCENE} ({iters} "
            "iterations), checkpoints scored on its last 10 frames (held out) and on the 30 trained on:",
            ["iteration", "held-out mAP", "held-out car AP", "held-out NDS", "fitted mAP", "fitted car AP"], rows)
    return scores


def select_depth(real, root, work, iters):
    """The ray-encoding choice on scene-0523's time split (see --select-depth); prints and writes
    select_depth.md."""
    scores = real.select_depth_on_train_scene(root, work / "infos", work / "select_depth", iters)
    rows = [[key, *(f"{v:.3f}" for v in (p["depth net"]["bin_accuracy"], p["depth net"]["abs_rel"],
                                         p["row prior"]["bin_accuracy"], p["row prior"]["abs_rel"])),
             p["depth net"]["pixels"]] for key, p in scores.items()]
    _report(work / "select_depth.md", f"Camera config trained on the first 30 frames of {real.TRAIN_SCENE} ({iters} "
            "iterations), the depth net scored on its last 10 frames (held out):",
            ["depth net", "bin accuracy", "abs-rel", "row prior bin accuracy", "row prior abs-rel", "pixels"], rows)
    return scores


if __name__ == "__main__":
    from pc_kd.engine import exit_on_user_error

    with exit_on_user_error():
        main()
