# Camera BEV detector on two REAL nuScenes scenes: six 128 x 352 images -> small image encoder (stride 8) -> LSS
# with BEVDepth's depth loss on the real LiDAR depth (bins [1, 61) m at 1 m) -> BEV 256 x 256 at 0.4 m -> SECOND
# -> FPN -> CenterHead; trained on scene-0523, scored on scene-0916.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_1000it.py",
          "../_base_/models/centerpoint_nuscenes-2scenes.py", "../_base_/datasets/nuscenes-2scenes_det.py"]
model = dict(lidar_encoder=None, camera_encoder={{_base_.lss_camera_encoder}}, backbone=dict(in_channels=32))
train_dataloader = dict(dataset=dict(pipeline={{_base_.camera_train_pipeline}}))
val_dataloader = dict(dataset=dict(pipeline={{_base_.camera_test_pipeline}}))
test_dataloader = val_dataloader
val_evaluator = dict(use_camera=True, use_lidar=False)
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=100, by_epoch=False, max_keep_ckpts=2,
                                     save_last=True),
                     logger=dict(type="LoggerHook", interval=20))
log_processor = dict(type="LogProcessor", window_size=20, by_epoch=False)
