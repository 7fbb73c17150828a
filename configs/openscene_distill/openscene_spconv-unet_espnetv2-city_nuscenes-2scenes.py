# OpenScene-style distillation on real nuScenes LiDAR: a 5-level spconv U-Net (20 cm voxels; intensity and height)
# regresses the Cityscapes ESPNetv2 decoder features fused into each point from the six cameras (points no camera
# sees carry no target); no label is used. Its points are labelled by the teacher's own classifier on the student's features.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_2000it.py",
          "../_base_/models/spconv_unet_distill.py", "../_base_/datasets/nuscenes-2scenes_points.py"]

model = dict(data_preprocessor=dict(voxel_size=(0.2, 0.2, 0.2)),
             student=dict(in_channels=5, channels=(16, 32, 64, 128, 256)),
             connectors=dict(proj=dict(in_channels=16, out_channels=10)),
             distill_losses=dict(_delete_=True, loss_l1=dict(type="L1FeatureLoss")),
             loss_mapping=dict(_delete_=True, loss_l1=dict(pred="backbone", connector="proj", target="precomputed")))
custom_hooks = []  # no clustering: the teacher's classifier names the classes
# iteration-based: checkpoints iter_<n>.pth (what a finished demo run is reused from), logs by iteration
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=200, by_epoch=False, max_keep_ckpts=2,
                                     save_last=True, save_best=None))
log_processor = dict(type="LogProcessor", window_size=20, by_epoch=False)
