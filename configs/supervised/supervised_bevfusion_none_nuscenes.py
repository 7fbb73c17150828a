# LiDAR + camera on nuScenes (BEVFusion layout): the voxel encoder (0.075 m, x8) and the ResNet-50 LSS encoder on
# one +-54 m grid at 0.6 m (180 x 180), ConvFuser -> SECOND -> FPN -> CenterHead.
# Not the published training recipe (no GT-database sampling, no CBGS, a smaller voxel encoder):
# docs/nuscenes_configs.md lists every difference.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cyclic_20e.py",
          "../_base_/models/centerpoint_nuscenes.py", "../_base_/datasets/nuscenes_det.py"]
model = dict(lidar_encoder={{_base_.voxel_lidar_encoder}}, camera_encoder={{_base_.lss_camera_encoder}},
             fuser=dict(type="ConvFuser", in_channels=[80, 256], out_channels=256))
train_dataloader = dict(dataset=dict(pipeline={{_base_.camera_train_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.camera_test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(use_camera=True, use_lidar=True)
test_evaluator = val_evaluator
