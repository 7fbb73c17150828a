# CenterPoint-pillar on nuScenes: 0.2 m pillars over +-51.2 m (512 x 512) -> SECOND (strides 2, 2, 2) -> FPN back
# to stride 4 (0.8 m, 128 x 128) -> CenterHead with six task groups; 10 sweeps.
# Not the published training recipe (no GT-database sampling, no CBGS, a smaller voxel encoder):
# docs/nuscenes_configs.md lists every difference.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cyclic_20e.py",
          "../_base_/models/centerpoint_nuscenes.py", "../_base_/datasets/nuscenes_det.py"]
model = dict(
    lidar_encoder=dict(type="PillarBEVEncoder", in_channels=5, point_cloud_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0],
                       pillar_size=(0.2, 0.2), out_channels=64),
    backbone=dict(in_channels=64, out_channels=(64, 128, 256), layer_nums=(3, 5, 5), layer_strides=(2, 2, 2)),
    neck=dict(in_channels=(64, 128, 256), out_channels=(128, 128, 128), upsample_strides=(0.5, 1, 2)),
    head=dict(in_channels=384, point_cloud_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0], out_cell=(0.8, 0.8)),
)
