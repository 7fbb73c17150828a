# UniDistill, LiDAR -> camera, on nuScenes with its published loss weights: the camera detector of
# supervised_lss-camera_none_nuscenes (student; its 20 epochs) learns from the trained LiDAR (voxel) detector
# (teacher, frozen) at the 9 keypoints of every box: bev_low features (x100), bev_high relations (x40),
# head responses (x10). Both share the +-54 m grid at 0.6 m. Train the teacher first:
#   tools/dist_train.sh configs/supervised/supervised_centerpoint-voxel_none_nuscenes.py 8
# Not the published training recipe (no GT-database sampling, no CBGS, a smaller voxel encoder):
# docs/nuscenes_configs.md lists every difference.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cyclic_20e.py",
          "../_base_/datasets/nuscenes_det.py"]

model = dict(type="BEVDistiller",
             student="configs/supervised/supervised_lss-camera_none_nuscenes.py",
             teacher="configs/supervised/supervised_centerpoint-voxel_none_nuscenes.py",
             teacher_ckpt="work_dirs/supervised_centerpoint-voxel_none_nuscenes/epoch_20.pth",
             weights=dict(feature=100.0, relation=40.0, response=10.0))
train_dataloader = dict(dataset=dict(pipeline={{_base_.camera_train_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.camera_test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(use_camera=True, use_lidar=False)
test_evaluator = val_evaluator
