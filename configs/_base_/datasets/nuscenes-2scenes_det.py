# Two REAL nuScenes scenes (the devkit's layout; $PC_KD_REAL_DATA/nuscenes_2scenes, default ../shared/realdata):
# train on scene-0523 (Boston, 40 key frames), score on scene-0916 (Singapore, 41). Info files first:
#   pc-kd create-infos nuscenes --root $PC_KD_REAL_DATA/nuscenes_2scenes --out data/nuscenes_2scenes \
#       --version v1.0-trainval --split-scenes train=scene-0523 val=scene-0916
# One LiDAR sweep per frame (the folder has no sweeps/), x y z intensity; 10 classes, the devkit's class ranges,
# GT from the tables (bike racks, LiDAR + radar points); six cameras at 128 x 352 (1600 x 900 scaled by 0.22,
# the bottom 128 rows).
nuscenes_root = "{{$PC_KD_REAL_DATA:../shared/realdata}}/nuscenes_2scenes"
data_root = "data/nuscenes_2scenes"  # the info files
class_names = ["car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle", "bicycle",
               "pedestrian", "traffic_cone"]
cam_names = ["CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT"]
nuscenes = dict(type="NuScenesDataset", data_root=data_root, nuscenes_root=nuscenes_root)
load_points = [dict(type="LoadPointsFromFile", load_dim=5, use_dim=(0, 1, 2, 3))]
load_boxes = dict(type="LoadAnnotations3D", with_seg=False, with_bbox_3d=True, with_velocity=True)
load_images = dict(type="LoadMultiViewImages", final_hw=(128, 352), cam_names=cam_names)
bev_augment = dict(type="BEVAugment", rot_range=(-0.3925, 0.3925), scale_range=(0.95, 1.05), flip_x_prob=0.5,
                   flip_y_prob=0.5)
train_pipeline = [*load_points, load_boxes, bev_augment, dict(type="PackDetInputs")]
test_pipeline = [*load_points, load_boxes, dict(type="PackDetInputs")]
camera_train_pipeline = [*load_points, load_boxes, load_images, dict(type="PointsToDepthMaps"), bev_augment,
                         dict(type="PackDetInputs")]
camera_test_pipeline = [*load_points, load_boxes, load_images, dict(type="PointsToDepthMaps"),
                        dict(type="PackDetInputs")]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(**nuscenes, ann_file="nuscenes_infos_train.pkl", pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False, sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(**nuscenes, ann_file="nuscenes_infos_val.pkl", pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type="NuScenesDetMetric", classes=class_names, jsonfile_prefix="work_dirs/nuscenes_2scenes",
                     tables_root=nuscenes_root, tables_version="v1.0-trainval")
test_evaluator = val_evaluator
