# The LiDAR BEV detector of supervised_centerpoint-pillar_none_synthetic-driving.py with a motion cue for its head:
# SweepMotion matches the key sweep's above-ground BEV occupancy against the earlier sweep's (shifts up to 7 cells
# = 11 m/s, 11 x 11-cell blocks) and the head reads its velocity estimate and match score beside the FPN output.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_300it.py",
          "../_base_/models/centerpoint_synthetic_driving.py", "../_base_/datasets/synthetic_driving_det.py"]
model = dict(
    motion=dict(type="SweepMotion", point_cloud_range={{_base_.point_cloud_range}}, cell=(0.8, 0.8),
                time_lag_edge=0.25, radius=7, window=11, min_z=-1.5),
    head=dict(in_channels=96 + 3),
)
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=100, by_epoch=False, max_keep_ckpts=2,
                                     save_last=True),
                     logger=dict(type="LoggerHook", interval=20))
log_processor = dict(type="LogProcessor", window_size=20, by_epoch=False)
