"""Build pc_kd info files (mmdet3d v1.x format) from the official dataset layouts.

    python tools/create_infos.py scannet  --root data/scannet  --out data/scannet  --split train
    python tools/create_infos.py s3dis    --root data/s3dis/Stanford3dDataset_v1.2_Aligned_Version --out data/s3dis
    python tools/create_infos.py nuscenes --root data/nuscenes --out data/nuscenes --version v1.0-mini --split train val
    python tools/create_infos.py nuscenes --root <folder with v1.0-trainval/> --out data/nuscenes_2scenes \
        --version v1.0-trainval --split-scenes train=scene-0523 val=scene-0916

nuScenes: files the tables list but the folder lacks (sweeps, radar) are reported once; a key frame without its
LiDAR or camera files stops the conversion, naming the file, unless --skip-missing.
Every output file is written atomically; an interrupted ScanNet or S3DIS conversion resumes where it stopped.
mmdet3d-processed ScanNet / S3DIS folders and mmdet3d v1.x nuScenes info files need no conversion: point the
dataset config at them directly.
"""
import argparse

import json
from pathlib import Path

from pc_kd.datasets.converters import create_nuscenes_split_infos, create_s3dis_infos, create_scannet_infos
from pc_kd.datasets.converters.nuscenes import parse_split_scenes
from pc_kd.utils.checks import DataError


def read_split_file(path) -> dict:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"--split-file {path}: no such file") from None
    except json.JSONDecodeError as err:
        raise DataError(f"--split-file {path}: not JSON ({err})") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) and all(isinstance(n, str) for n in v)
                                             for v in data.values()):
        raise DataError(f"--split-file {path}: expected {{split: [scene name, ...]}}, e.g. "
                        f'{{"train": ["scene-0523"], "val": ["scene-0916"]}}')
    return data


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["scannet", "s3dis", "nuscenes"], help="which dataset to convert")
    parser.add_argument("--root", "--root-path", dest="root", required=True,
                        help="dataset root in its official layout (--root-path: mmdet3d's create_data name)")
    parser.add_argument("--out", "--out-dir", dest="out", required=True,
                        help="output folder (points, masks, info .pkl) (--out-dir: mmdet3d's name)")
    parser.add_argument("--extra-tag", default=None,
                        help="accepted for mmdet3d's create_data command lines; pc_kd names its files "
                             "<dataset>_infos_<split>.pkl")
    parser.add_argument("--split", nargs="+", default=["train"],
                        help="scannet: train / val / test; nuscenes: train / val / test / all (one or more)")
    parser.add_argument("--split-scenes", nargs="+", default=None, metavar="SPLIT=SCENE[,SCENE]",
                        help="nuScenes: the scenes of each split, e.g. train=scene-0523 val=scene-0916 (instead of "
                             "the devkit's split lists)")
    parser.add_argument("--split-file", default=None,
                        help="nuScenes: a JSON file {split: [scene, ...]} (as --split-scenes)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="nuScenes: leave out key frames whose LiDAR or camera file is absent (named in the log) "
                             "instead of stopping")
    parser.add_argument("--version", default="v1.0-mini", help="nuScenes version folder")
    parser.add_argument("--areas", default="1,2,3,4,5,6", help="S3DIS areas, comma separated")
    parser.add_argument("--frames-root", default=None,
                        help="ScanNet: folder with <scene>/{color,depth,pose,intrinsic} exported from .sens "
                             "(default: the scene folders themselves)")
    parser.add_argument("--frame-step", type=int, default=20, help="ScanNet: keep every N-th frame")
    args = parser.parse_args(argv)
    if args.dataset == "scannet":
        out = [create_scannet_infos(args.root, args.out, split, frames_root=args.frames_root,
                                    frame_step=args.frame_step) for split in args.split]
    elif args.dataset == "s3dis":
        out = create_s3dis_infos(args.root, args.out, [int(a) for a in args.areas.split(",")])
    else:
        split_scenes = parse_split_scenes(args.split_scenes) if args.split_scenes else None
        if args.split_file:
            split_scenes = {**read_split_file(args.split_file), **(split_scenes or {})}
        out = create_nuscenes_split_infos(args.root, args.out, args.version, args.split, split_scenes,
                                          args.skip_missing)
    for path in out:
        print(f"wrote {path}")


if __name__ == "__main__":
    from pc_kd.engine import exit_on_user_error

    with exit_on_user_error():
        main()
