"""Cost of distilling from a teacher that runs inside the training step (online: the 2D teacher on the scene's posed
frames, then back-projection into the points) against targets fused once and read from files (offline), on the
same scenes: the OpenScene-style configs on the synthetic rooms.

    python benchmarks/bench_online_fusion.py [--device cuda] [--batch 2] [--repeats 3] [--out result.json]

Times, median of ``--repeats`` after a warm-up, one batch of the first ``--batch`` training rooms: loading the
batch (the online pipeline reads the frames, the offline one the fused ``.npz``), the online targets alone
(teacher + back-projection, no gradient), and a whole training step (forward, backward, optimiser) of each
config. Prints JSON with the teacher + back-projection share of the online step and the online / offline step
ratio; with ``--device cuda`` the same on a GPU (goal there: the share < 15 %). The offline config needs the
fused files and super-points: ``make demo`` (or ``tools/fuse_features.py`` + ``tools/make_superpoints.py``)
writes them under ``data/synthetic_indoor_distill``.
"""
import argparse
import os
import sys

import torch

from common import emit, machine, timed

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
CONFIGS = dict(online="configs/openscene_distill/openscene-online_spconv-unet_tinysegnet_synthetic-indoor.py",
               offline="configs/openscene_distill/openscene_spconv-unet_tinysegnet_synthetic-indoor.py")


def build(name, device):
    """(model in train mode with its optimiser wrapper, training dataset) of a config."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    from pc_kd.registry import DATASETS, MODELS

    init_default_scope("pc_kd")
    cfg = Config.fromfile(os.path.join(ROOT, CONFIGS[name]))
    model = MODELS.build(cfg.model).to(device).train()
    return model, build_optim_wrapper(model, cfg.optim_wrapper), DATASETS.build(cfg.train_dataloader.dataset)


def load_batch(dataset, batch):
    from mmengine.dataset import pseudo_collate

    torch.manual_seed(0)  # the same augmentation draws for both pipelines
    return pseudo_collate([dataset[i] for i in range(batch)])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=2, help="rooms per step (the configs' batch size)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    cwd = os.getcwd()
    os.chdir(ROOT)  # the configs name data and teacher weights from the repository root
    try:
        result = dict(machine=machine(), device=args.device, batch=args.batch)
        for name in ("online", "offline"):
            model, optim, dataset = build(name, args.device)
            t_load, _, batch = timed(lambda: load_batch(dataset, args.batch), "cpu", args.repeats)

            def step():
                data = model.data_preprocessor(batch, True)
                optim.update_params(sum(v for k, v in model.loss(**data).items() if "loss" in k))

            t_step, peak, _ = timed(step, args.device, args.repeats)
            row = dict(config=CONFIGS[name], load_batch_s=t_load, step_s=t_step, step_peak_bytes=peak,
                       points=int(sum(len(p) for p in batch["inputs"]["points"])))
            if name == "online":
                data = model.data_preprocessor(batch, True)
                with torch.no_grad():
                    t_targets, _, _ = timed(lambda: model._targets(data["inputs"], data["data_samples"]),
                                            args.device, args.repeats)
                row.update(teacher_backprojection_s=t_targets, teacher_backprojection_share=t_targets / t_step,
                           frames=int(sum(len(s.frames.images) for s in batch["data_samples"])))
            result[name] = row
        result["online_over_offline_step"] = result["online"]["step_s"] / result["offline"]["step_s"]
        result["online_over_offline_load_plus_step"] = (
            (result["online"]["step_s"] + result["online"]["load_batch_s"])
            / (result["offline"]["step_s"] + result["offline"]["load_batch_s"]))
    finally:
        os.chdir(cwd)
    emit(result, args.out)
    return result


if __name__ == "__main__":
    main()
