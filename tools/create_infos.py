"""Build pc_kd info files (mmdet3d v1.x format) from the official dataset layouts.

    python tools/create_infos.py scannet  --root data/scannet  --out data/scannet  --split train
    python tools/create_infos.py s3dis    --root data/s3dis/Stanford3dDataset_v1.2_Aligned_Version --out data/s3dis
    python tools/create_infos.py nuscenes --root data/nuscenes --out data/nuscenes --version v1.0-mini --split train

Every output file is written atomically; an interrupted ScanNet or S3DIS conversion resumes where it stopped.
mmdet3d-processed ScanNet / S3DIS folders and mmdet3d v1.x nuScenes info files need no conversion: point the
dataset config at them directly.
"""
import argparse

from pc_kd.datasets.converters import create_nuscenes_infos, create_s3dis_infos, create_scannet_infos


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
    parser.add_argument("--split", default="train", help="scannet: train / val / test; nuscenes: train / val")
    parser.add_argument("--version", default="v1.0-mini", help="nuScenes version folder")
    parser.add_argument("--areas", default="1,2,3,4,5,6", help="S3DIS areas, comma separated")
    parser.add_argument("--frames-root", default=None,
                        help="ScanNet: folder with <scene>/{color,depth,pose,intrinsic} exported from .sens "
                             "(default: the scene folders themselves)")
    parser.add_argument("--frame-step", type=int, default=20, help="ScanNet: keep every N-th frame")
    args = parser.parse_args(argv)
    if args.dataset == "scannet":
        out = [create_scannet_infos(args.root, args.out, args.split, frames_root=args.frames_root,
                                    frame_step=args.frame_step)]
    elif args.dataset == "s3dis":
        out = create_s3dis_infos(args.root, args.out, [int(a) for a in args.areas.split(",")])
    else:
        out = [create_nuscenes_infos(args.root, args.out, args.version, args.split)]
    for path in out:
        print(f"wrote {path}")


if __name__ == "__main__":
    from pc_kd.engine import exit_on_user_error

    with exit_on_user_error():
        main()
