"""The ``pc-kd`` command: one entry point for the repository's tools, its benchmarks and ``doctor``.

    pc-kd train CONFIG [--work-dir D] [--resume [CKPT|auto]] [--cfg-options k=v ...]
    pc-kd test CONFIG CHECKPOINT
    pc-kd eval-nuscenes RESULTS.json --root DIR --version V [--scenes NAME ...] [--out F] [--devkit]
    pc-kd create-infos scannet|s3dis|nuscenes --root DIR --out DIR   (mmdet3d's --root-path / --out-dir too)
    pc-kd fuse | superpoints | visualize | teacher CONFIG ...
    pc-kd demo | demo-bev | demo-real | demo-real-teachers | demo-drive-segment | demo-partdistill | demo-pretrain
        [...]
    pc-kd bench NAME [...]          (benchmarks/bench_NAME.py; without NAME: the list)
    pc-kd doctor                    (versions, sparse-conv backend, GPU, headless rendering, data and weights)

Each subcommand runs the script of the same job in ``tools/`` (``pc-kd train`` is ``python tools/train.py``) with
the arguments after it, so ``pc-kd SUBCOMMAND --help`` shows that script's options. The scripts live in the
repository next to the ``pc_kd`` package (an editable install, ``pip install -e .``, as ``make install`` does).
"""
import sys
from pathlib import Path
from typing import List, Optional

REPO = Path(__file__).resolve().parents[1]
TOOLS = {
    "train": ("train.py", "train a model from a config (mmengine Runner)"),
    "test": ("test.py", "score a checkpoint on its config's test set"),
    "eval-nuscenes": ("eval_nuscenes.py", "score a nuScenes results JSON on the devkit's tables (--devkit: beside "
                                          "the devkit's own DetectionEval)"),
    "create-infos": ("create_infos.py", "convert ScanNet / S3DIS / nuScenes into info files"),
    "fuse": ("fuse_features.py", "back-project a 2D teacher's features into the points of every scene"),
    "superpoints": ("make_superpoints.py", "super-points (VCCS, ScanNet segments or your files) per scene"),
    "visualize": ("visualize.py", "render a scene (labels, RGB, super-points, features) to a PNG"),
    "teacher": ("train_image_teacher.py", "train the small 2D teacher of the synthetic demo"),
    "demo": ("demo.py", "the image -> 3D distillation demo (table + pictures)"),
    "demo-bev": ("demo_bev.py", "BEV detection and cross-modal BEV distillation demo"),
    "demo-real": ("demo_real.py", "REAL nuScenes: two scenes converted, detectors trained and scored (pc_kd + devkit)"),
    "demo-real-teachers": ("demo_real_teachers.py", "REAL pretrained 2D teachers (ESPNetv2) fused into a real ScanNet "
                                                    "scan and into real nuScenes LiDAR, distilled into a point student"),
    "demo-drive-segment": ("demo_drive_segment.py", "Drive&Segment: LiDAR segments -> pseudo-labels -> a 2D "
                                                    "segmentation student, synthetic driving frames"),
    "demo-partdistill": ("demo_partdistill.py", "PartDistill: 2D part boxes -> 3D knowledge units -> a point "
                                                "student, forward and backward distillation, synthetic shapes"),
    "demo-pretrain": ("demo_pretrain.py", "ACT and ReCon: masked point modelling from a 2D teacher, a linear probe on "
                                          "held-out classes, synthetic objects"),
}


def _usage() -> str:
    lines = ["usage: pc-kd SUBCOMMAND [options]   (pc-kd SUBCOMMAND --help for its options)", "", "subcommands:"]
    lines += [f"  {name:19s} {about}" for name, (_, about) in TOOLS.items()]
    lines += [f"  {'bench':19s} run benchmarks/bench_NAME.py (pc-kd bench: the list)",
              f"  {'doctor':19s} what pc_kd finds on this machine: versions, sparse-conv backend, GPU, rendering, "
              "data, weights"]
    return "\n".join(lines)


def _run_script(script: Path, args: List[str], what: str) -> int:
    if not script.is_file():
        print(f"error: pc-kd {what} runs {script}, which is not there: pc-kd needs the repository it was installed "
              f"from (git clone, then pip install -e . or make install)", file=sys.stderr)
        return 1
    saved = sys.argv
    sys.argv = [f"pc-kd {what}", *args]  # argparse's usage line names the command the user typed
    try:
        # run as __main__ like ``python script``; not runpy.run_path, which would set argv[0] to the script's path
        code = compile(script.read_text(), str(script), "exec")
        exec(code, {"__name__": "__main__", "__file__": str(script), "__builtins__": __builtins__})
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = saved
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "doctor":
        from pc_kd.doctor import print_report
        return print_report()
    if command == "bench":
        benches = sorted(p.stem[len("bench_"):] for p in (REPO / "benchmarks").glob("bench_*.py"))
        if not rest or rest[0] in ("-h", "--help"):
            print("usage: pc-kd bench NAME [options]   benchmarks: " + ", ".join(benches))
            return 0 if rest else 2
        if rest[0] not in benches:
            print(f"error: no benchmark {rest[0]!r}; benchmarks: {', '.join(benches)}", file=sys.stderr)
            return 2
        return _run_script(REPO / "benchmarks" / f"bench_{rest[0]}.py", rest[1:], f"bench {rest[0]}")
    if command not in TOOLS:
        import difflib
        close = difflib.get_close_matches(command, list(TOOLS) + ["bench", "doctor"], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        print(f"error: unknown subcommand {command!r}{hint}\n\n{_usage()}", file=sys.stderr)
        return 2
    return _run_script(REPO / "tools" / TOOLS[command][0], rest, command)


if __name__ == "__main__":
    sys.exit(main())
