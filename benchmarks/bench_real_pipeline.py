"""Speed on REAL nuScenes frames (``$PC_KD_REAL_DATA/nuscenes_2scenes``): the data pipeline per frame, stage by
stage (LiDAR file, six 1600 x 900 JPEGs decoded and resized to 128 x 352, LiDAR depth maps, augmentation and
packing), against one training step of each real-data config at batch 2 (forward, backward, optimizer), and the
LiDAR encoder alone at the real grid (0.4 m pillars over +-51.2 m, 256 x 256); and, in the same run, the LiDAR step
with CenterPoint's own two-conv heatmap and regression branches, which the configs' one-conv branches replace
(``step_ratio_centerpoint_branches``: that step's time / the config's), and the LiDAR step in float32
(``step_ratio_float32``: that step's time / the config's, which trains under CPU bfloat16 autocast). Each step runs
through the config's optimiser wrapper, as the Runner runs it.

    python benchmarks/bench_real_pipeline.py [--frames 6] [--repeats 3] [--infos data/nuscenes_2scenes]

Needs the info files (``pc-kd create-infos nuscenes ... --split-scenes train=scene-0523 val=scene-0916``, see
the README's "Real data"). Prints JSON: seconds per frame of each pipeline stage (median over ``--repeats`` passes
over ``--frames`` frames, after a warm-up pass), seconds per training step per config (median of ``--repeats``
after a warm-up step), the pipeline's share of a step when the loader runs in the training process
(``num_workers=0``, the configs' setting) and which of the two bounds a step.
"""
import argparse
import copy
import os
import statistics
import sys
import time

import torch

from common import emit, machine, timed

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
ROOT = os.path.join(os.path.dirname(__file__), "..")
CONFIGS = {name: os.path.join(ROOT, "configs", "supervised", f"supervised_{stem}_none_nuscenes-2scenes.py")
           for name, stem in (("lidar", "centerpoint-pillar"), ("camera", "lss-camera"), ("fusion", "bevfusion"))}


def load(name, infos):
    from mmengine.config import Config

    cfg = Config.fromfile(CONFIGS[name])
    cfg.train_dataloader.dataset.data_root = infos
    return cfg


def stage_times(cfg, frames, repeats):
    """Median seconds per frame of each transform of the training pipeline."""
    from pc_kd.experiments.common import build

    spec = copy.deepcopy(cfg.train_dataloader.dataset)
    pipeline = spec.pop("pipeline")
    spec["pipeline"] = []
    dataset = build("DATASETS", spec)
    transforms = [build("TRANSFORMS", t) for t in pipeline]
    names = [t["type"] for t in pipeline]
    passes = []
    for _ in range(repeats + 1):  # the first pass warms the file cache
        seconds = [0.0] * len(transforms)
        for i in range(frames):
            results = dataset.get_data_info(i)
            for k, transform in enumerate(transforms):
                start = time.perf_counter()
                results = transform(results)
                seconds[k] += time.perf_counter() - start
        passes.append([s / frames for s in seconds])
    return {name: statistics.median(p[k] for p in passes[1:]) for k, name in enumerate(names)}


# CenterPoint's own branches (conv + BN + ReLU + conv, 64 channels, regressions at the centre cell only): what the
# real-data configs' one-conv branches replace
CENTERPOINT_BRANCHES = dict(num_heatmap_convs=2, num_reg_convs=2, reg_radius=0, head_conv=64)


def step_time(cfg, repeats, wrapper_type=None):
    """Median seconds of one training step (data preprocessor, forward, backward, AdamW) at the config's batch,
    through the config's optimiser wrapper (``BFloat16OptimWrapper``: the forward under CPU bfloat16 autocast) or
    ``wrapper_type`` when given, as the Runner's ``train_step`` runs it."""
    from mmengine.dataset import pseudo_collate

    from pc_kd.experiments.common import build, init_weights_quietly
    from pc_kd.registry import OPTIM_WRAPPERS  # pc_kd's wrappers, mmengine's as the fallback

    model = build("MODELS", cfg.model)
    init_weights_quietly(model)
    model.train()
    dataset = build("DATASETS", cfg.train_dataloader.dataset)
    batch = pseudo_collate([dataset[i] for i in range(cfg.train_dataloader.batch_size)])
    kind = wrapper_type or cfg.optim_wrapper.type
    wrapper = OPTIM_WRAPPERS.build(dict(type=kind, optimizer=torch.optim.AdamW(model.parameters(), lr=1e-4)))

    def step():
        model.train_step(batch, wrapper)

    seconds, peak, _ = timed(step, "cpu", repeats=repeats)
    encoder = getattr(model, "lidar_encoder", None)
    out = dict(optim_wrapper=kind, step_s=seconds, step_peak_mb=peak / 2 ** 20)
    if encoder is not None:
        data = model.data_preprocessor(batch, True)

        def encode():
            encoder(data["inputs"]["points"]).sum().backward()

        out["lidar_encoder_s"], _, _ = timed(encode, "cpu", repeats=repeats)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--infos", default="data/nuscenes_2scenes")
    args = parser.parse_args()
    torch.manual_seed(0)
    out = dict(machine=machine(), frames=args.frames, repeats=args.repeats)
    anchor = load("lidar", args.infos)
    anchor.model.head.update(CENTERPOINT_BRANCHES)
    out["lidar_with_centerpoint_branches"] = step_time(anchor, args.repeats)
    out["lidar_float32"] = step_time(load("lidar", args.infos), args.repeats, wrapper_type="OptimWrapper")
    for name in CONFIGS:
        cfg = load(name, args.infos)
        stages = stage_times(cfg, args.frames, args.repeats)
        step = step_time(cfg, args.repeats)
        batch = cfg.train_dataloader.batch_size
        pipeline = sum(stages.values()) * batch
        out[name] = dict(pipeline_s_per_frame=stages, pipeline_s_per_batch=pipeline, **step,
                         pipeline_share_of_step=pipeline / (pipeline + step["step_s"]),
                         bound_by="pipeline" if pipeline > step["step_s"] else "compute")
    out["lidar"]["step_ratio_centerpoint_branches"] = (out["lidar_with_centerpoint_branches"]["step_s"]
                                                       / out["lidar"]["step_s"])
    out["lidar"]["step_ratio_float32"] = out["lidar_float32"]["step_s"] / out["lidar"]["step_s"]
    emit(out)


if __name__ == "__main__":
    main()
