# UniDistill, camera -> LiDAR, on synthetic driving v2: the pillar detector of supervised_centerpoint-pillar
# (student; its 300 iterations at batch 4) learns from the trained camera detector (teacher, frozen) at the 9
# keypoints of every box: bev_low features (x10), bev_high relations (x5) and head responses (x1), the teacher's
# heatmap read at temperature 1 (at UniDistill's 2 it pulls the LiDAR student off its own sharp peaks here, as in
# fusion -> LiDAR; the nuScenes twin keeps 2). The teacher needs the images: the camera pipeline. Train it first:
#   python tools/train.py configs/supervised/supervised_lss-camera_none_synthetic-driving.py
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_300it.py",
          "../_base_/datasets/synthetic_driving_det.py"]

model = dict(type="BEVDistiller",
             student="configs/supervised/supervised_centerpoint-pillar_none_synthetic-driving.py",
             teacher="configs/supervised/supervised_lss-camera_none_synthetic-driving.py",
             teacher_ckpt="work_dirs/supervised_lss-camera_none_synthetic-driving/iter_600.pth",
             weights=dict(feature=10.0, relation=5.0, response=1.0), t_temp=1.0)
train_dataloader = dict(dataset=dict(pipeline={{_base_.camera_train_pipeline}}))
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=100, by_epoch=False, max_keep_ckpts=2,
                                     save_last=True),
                     logger=dict(type="LoggerHook", interval=20))
log_processor = dict(type="LogProcessor", window_size=20, by_epoch=False)
