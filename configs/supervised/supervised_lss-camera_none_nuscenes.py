# Camera BEV detector on nuScenes (BEVDepth's depth supervision, BEVFusion's grid): six 256 x 704 images ->
# ResNet-50 (stride 16) -> LSS, depth bins [2, 58) m at 0.5 m (112) + LiDAR depth loss (x3) -> BEV +-54 m at
# 0.6 m -> SECOND -> FPN -> CenterHead. ImageNet weights:
# --cfg-options model.camera_encoder.image_encoder.pretrained=<a torchvision resnet50 state dict .pth>
# Not the published training recipe (no GT-database sampling, no CBGS, a smaller voxel encoder):
# docs/nuscenes_configs.md lists every difference.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cyclic_20e.py",
          "../_base_/models/centerpoint_nuscenes.py", "../_base_/datasets/nuscenes_det.py"]
model = dict(camera_encoder={{_base_.lss_camera_encoder}}, backbone=dict(in_channels=80))
train_dataloader = dict(dataset=dict(pipeline={{_base_.camera_train_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.camera_test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(use_camera=True, use_lidar=False)
test_evaluator = val_evaluator
