# nuScenes key frames (tools/create_infos.py nuscenes, or mmdet3d's v1.x info files) for BEV detection: 10 classes,
# the devkit's class ranges, LiDAR with 9 earlier sweeps (time-lag channel), six cameras at 256 x 704.
data_root = "data/nuscenes"
class_names = ["car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle", "bicycle",
               "pedestrian", "traffic_cone"]
cam_names = ["CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT"]
nuscenes = dict(type="NuScenesDataset", data_root=data_root)
load_points = [dict(type="LoadPointsFromFile", load_dim=5, use_dim=(0, 1, 2, 3)),
               dict(type="LoadPointsFromMultiSweeps", sweeps_num=9, load_dim=5, use_dim=(0, 1, 2, 3))]
load_boxes = dict(type="LoadAnnotations3D", with_seg=False, with_bbox_3d=True, with_velocity=True)
load_images = dict(type="LoadMultiViewImages", final_hw=(256, 704), cam_names=cam_names)
bev_augment = dict(type="BEVAugment", rot_range=(-0.3925, 0.3925), scale_range=(0.95, 1.05), flip_x_prob=0.5,
                   flip_y_prob=0.5)
train_pipeline = [*load_points, load_boxes, bev_augment, dict(type="PackDetInputs")]
test_pipeline = [*load_points, load_boxes, dict(type="PackDetInputs")]
camera_train_pipeline = [*load_points, load_boxes, load_images, dict(type="PointsToDepthMaps"), bev_augment,
                         dict(type="PackDetInputs")]
camera_test_pipeline = [*load_points, load_boxes, load_images, dict(type="PackDetInputs")]
train_dataloader = dict(
    # EpochSeededSampler: augmentation drawn per (seed, epoch, sample), so a resumed run with fresh workers
    # draws what the uninterrupted run drew
    batch_size=4, num_workers=4, persistent_workers=True, sampler=dict(type="EpochSeededSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(**nuscenes, ann_file="nuscenes_infos_train.pkl", pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(**nuscenes, ann_file="nuscenes_infos_val.pkl", pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
# GT from the devkit's tables, as its DetectionEval reads it (bike-rack filter, LiDAR + radar points, NaN velocities)
val_evaluator = dict(type="NuScenesDetMetric", classes=class_names, jsonfile_prefix="work_dirs/nuscenes_results",
                     tables_root=data_root, tables_version="v1.0-trainval")
test_evaluator = val_evaluator
