# LiDAR BEV detector on two REAL nuScenes scenes: 0.4 m pillars over +-51.2 m -> SECOND -> FPN -> CenterHead
# (10 classes); trained on scene-0523's 40 key frames, scored on scene-0916 with the nuScenes metric on the
# devkit's tables. `make demo-real` runs it (and prints the table of docs/results/nuscenes_2scenes.md).
# 4000 iterations under CPU bfloat16 autocast (BFloat16OptimWrapper; a step at batch 2 takes 0.21 s instead of
# 0.33 s in float32 on 2 cores, benchmarks/bench_real_pipeline.py): 16.7 min of training, fitting scene-0523 to car
# AP 0.680 (float32, 2000 iterations in the same time budget: 0.521). On a CPU without native bfloat16 (no AVX512-BF16 / AMX) train with
# --cfg-options optim_wrapper.type=OptimWrapper.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_4000it.py",
          "../_base_/models/centerpoint_nuscenes-2scenes.py", "../_base_/datasets/nuscenes-2scenes_det.py"]
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=100, by_epoch=False, max_keep_ckpts=2,
                                     save_last=True),
                     logger=dict(type="LoggerHook", interval=20))
log_processor = dict(type="LogProcessor", window_size=20, by_epoch=False)
optim_wrapper = dict(type="BFloat16OptimWrapper")
