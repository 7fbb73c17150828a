"""Train a small 2D segmentation teacher (TinySegNet) on posed frames and their 2D label images.

    python tools/train_image_teacher.py CONFIG [--iters N] [--out teacher.pth] [--split train]
        [--cfg-options k=v ...]

Frames come from the config's ``teacher_training.dataset`` - in the synthetic configs a "2D dataset" of rooms
with their own seeds that the 3D student never sees, standing for an image model pretrained elsewhere - or,
for a config without one, from ``<split>_dataloader.dataset``. Only 2D labels (the frames' ``label_path``
images, 255 = ignore) are used, never 3D labels. The weights are written atomically as
``{'state_dict': ...}`` to ``--out`` (default: the config's ``fusion.teacher.pretrained``), where
``ModuleTeacher(pretrained=...)`` loads them.
"""
import argparse

from pc_kd.engine.config_checks import add_config_options, load_checked_config


def main(argv=None):
    from mmengine.registry import init_default_scope

    from pc_kd.engine.teacher_training import train_image_teacher
    from pc_kd.registry import DATASETS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="a distillation config (its teacher_training / fusion.teacher)")
    parser.add_argument("--split", default="train", choices=["train", "val"],
                        help="frames of this split, for configs without teacher_training.dataset")
    parser.add_argument("--iters", type=int, help="default: teacher_training.iters, else 1000")
    parser.add_argument("--out", help="weights file (default: the config's fusion.teacher.pretrained)")
    add_config_options(parser)
    args = parser.parse_args(argv)
    cfg = load_checked_config(args.config, args.cfg_options)
    init_default_scope(cfg.get("default_scope", "pc_kd"))
    training = dict(cfg.get("teacher_training", {}))
    ds_cfg = dict(training.pop("dataset", None) or cfg[f"{args.split}_dataloader"]["dataset"])
    ds_cfg["pipeline"] = []
    if args.iters:
        training["iters"] = args.iters
    teacher = cfg.fusion["teacher"]
    out = args.out or teacher["pretrained"]
    miou = train_image_teacher(DATASETS.build(ds_cfg), teacher["model"], out, **training)
    print(f"2D teacher written to {out}; mIoU on its training frames {miou * 100:.1f} %")
    return miou


if __name__ == "__main__":
    from pc_kd.engine import exit_on_user_error

    with exit_on_user_error():
        main()
