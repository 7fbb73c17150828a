# UniDistill, fusion -> LiDAR, on synthetic driving v2: the pillar detector of supervised_centerpoint-pillar
# (student; its 300 iterations at batch 4) learns from the trained LiDAR + camera detector (teacher, frozen) at the 9
# keypoints of every box: bev_low features (x10), bev_high relations (x1) and head responses (x10). The teacher's
# heatmap is read at temperature 1, not UniDistill's 2 (the nuScenes twin keeps 2): softened, it pulls a LiDAR student
# off its own sharp peaks (README: Why fusion -> LiDAR loses; the demo path fusion_to_lidar_t2 runs it at 2).
# The teacher needs the images: the camera pipeline. Train the teacher first:
#   python tools/train.py configs/supervised/supervised_bevfusion_none_synthetic-driving.py
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_300it.py",
          "../_base_/datasets/synthetic_driving_det.py"]

model = dict(type="BEVDistiller",
             student="configs/supervised/supervised_centerpoint-pillar_none_synthetic-driving.py",
             teacher="configs/supervised/supervised_bevfusion_none_synthetic-driving.py",
             teacher_ckpt="work_dirs/supervised_bevfusion_none_synthetic-driving/iter_300.pth",
             weights=dict(feature=10.0, relation=1.0, response=10.0), t_temp=1.0)
train_dataloader = dict(dataset=dict(pipeline={{_base_.camera_train_pipeline}}))
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=100, by_epoch=False, max_keep_ckpts=2,
                                     save_last=True),
                     logger=dict(type="LoggerHook", interval=20))
log_processor = dict(type="LogProcessor", window_size=20, by_epoch=False)
