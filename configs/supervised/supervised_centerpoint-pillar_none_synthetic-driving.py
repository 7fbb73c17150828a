# LiDAR BEV detector: pillars (the key sweep and 1 earlier sweep in separate channels) -> SECOND -> FPN ->
# CenterHead; 300 iterations at batch 4 on synthetic driving v2, scored with the nuScenes metric over 30 m.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_300it.py",
          "../_base_/models/centerpoint_synthetic_driving.py", "../_base_/datasets/synthetic_driving_det.py"]
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=100, by_epoch=False, max_keep_ckpts=2,
                                     save_last=True),
                     logger=dict(type="LoggerHook", interval=20))
log_processor = dict(type="LogProcessor", window_size=20, by_epoch=False)
