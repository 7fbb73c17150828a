# CenterPoint-voxel on nuScenes: 0.075 m voxels over +-54 m (1440 x 1440 x 40) -> SparseEncoder8x (x8: 0.6 m)
# -> SECOND -> FPN -> CenterHead with six task groups; 10 sweeps.
# Not the published training recipe (no GT-database sampling, no CBGS, a smaller voxel encoder):
# docs/nuscenes_configs.md lists every difference.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cyclic_20e.py",
          "../_base_/models/centerpoint_nuscenes.py", "../_base_/datasets/nuscenes_det.py"]
model = dict(lidar_encoder={{_base_.voxel_lidar_encoder}})
