# LiDAR BEV detector on two REAL nuScenes scenes: 0.4 m pillars over +-51.2 m -> SECOND -> FPN -> CenterHead
# (10 classes); trained on scene-0523's 40 key frames, scored on scene-0916 with the nuScenes metric on the
# devkit's tables. `make demo-real` runs it (and prints the table of docs/results/nuscenes_2scenes.md).
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_2000it.py",
          "../_base_/models/centerpoint_nuscenes-2scenes.py", "../_base_/datasets/nuscenes-2scenes_det.py"]
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=100, by_epoch=False, max_keep_ckpts=2,
                                     save_last=True),
                     logger=dict(type="LoggerHook", interval=20))
log_processor = dict(type="LogProcessor", window_size=20, by_epoch=False)
