# LiDAR BEV detector with sparse 3D convolutions: 0.1 x 0.1 x 0.2 m voxels -> SparseEncoder8x (BEV at 0.8 m,
# height folded into 256 channels) -> SECOND -> FPN -> CenterHead. Sparse convolutions run on spconv's native
# CPU path here (slow); on a GPU they use its implicit GEMM.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_300it.py",
          "../_base_/models/centerpoint_synthetic_driving.py", "../_base_/datasets/synthetic_driving_det.py"]
model = dict(
    lidar_encoder=dict(_delete_=True, type="SparseEncoder8x", in_channels=5,
                       point_cloud_range=[-32.0, -32.0, -5.0, 32.0, 32.0, 3.0], voxel_size=(0.1, 0.1, 0.2)),
    backbone=dict(in_channels=256),
)
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=100, by_epoch=False, max_keep_ckpts=2,
                                     save_last=True),
                     logger=dict(type="LoggerHook", interval=20))
log_processor = dict(type="LogProcessor", window_size=20, by_epoch=False)
