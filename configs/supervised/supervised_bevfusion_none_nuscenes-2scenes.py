# LiDAR + camera BEV detector on two REAL nuScenes scenes (BEVFusion layout): the pillar and LSS encoders of the
# two single-modality configs, a ConvFuser on their BEV maps, then SECOND -> FPN -> CenterHead; trained on
# scene-0523, scored on scene-0916.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_1000it.py",
          "../_base_/models/centerpoint_nuscenes-2scenes.py", "../_base_/datasets/nuscenes-2scenes_det.py"]
model = dict(camera_encoder={{_base_.lss_camera_encoder}}, fuser=dict(type="ConvFuser", in_channels=[32, 32],
                                                                     out_channels=32))
train_dataloader = dict(dataset=dict(pipeline={{_base_.camera_train_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.camera_test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(use_camera=True, use_lidar=True)
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=100, by_epoch=False, max_keep_ckpts=2,
                                     save_last=True),
                     logger=dict(type="LoggerHook", interval=20))
log_processor = dict(type="LogProcessor", window_size=20, by_epoch=False)
