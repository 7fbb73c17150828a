# UniDistill LiDAR -> camera with BEVDistill-style dense imitation added: the whole bev_high map of the student
# (through its 1x1 adapter) imitates the teacher's, each cell's squared error summed over the 96 channels and
# weighted by the boxes' Gaussians (x0.1, about 10x the channel mean), beside
# UniDistill's three keypoint terms. Train the teacher first:
#   python tools/train.py configs/supervised/supervised_centerpoint-pillar_none_synthetic-driving.py
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_600it.py",
          "../_base_/datasets/synthetic_driving_det.py"]

model = dict(type="BEVDistiller",
             student="configs/supervised/supervised_lss-camera_none_synthetic-driving.py",
             teacher="configs/supervised/supervised_centerpoint-pillar_none_synthetic-driving.py",
             teacher_ckpt="work_dirs/supervised_centerpoint-pillar_none_synthetic-driving/iter_300.pth",
             weights=dict(feature=100.0, relation=40.0, response=10.0, dense=0.1))
train_dataloader = dict(batch_size=2, dataset=dict(pipeline={{_base_.camera_train_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.camera_test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(use_camera=True, use_lidar=False)
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=100, by_epoch=False, max_keep_ckpts=2,
                                     save_last=True),
                     logger=dict(type="LoggerHook", interval=20))
log_processor = dict(type="LogProcessor", window_size=20, by_epoch=False)
