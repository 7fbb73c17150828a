# Synthetic driving v2 (generated into data_root on first use, then cached) in the nuScenes layout, for BEV
# detection: 5 classes, class range 30 m, BEV grid +-32 m; 64 train / 64 val key frames with 1 earlier sweep.
data_root = "data/synthetic_driving"
class_names = ["car", "truck", "pedestrian", "traffic_cone", "barrier"]
point_cloud_range = [-32.0, -32.0, -5.0, 32.0, 32.0, 3.0]
image_hw = (112, 200)
synthetic = dict(type="SyntheticDrivingDataset", data_root=data_root, seed=0, image_hw=image_hw, num_objects=24,
                 num_sweeps=1)
load_points = [dict(type="LoadPointsFromFile", load_dim=5, use_dim=(0, 1, 2, 3)),
               dict(type="LoadPointsFromMultiSweeps", sweeps_num=1, load_dim=5, use_dim=(0, 1, 2, 3))]
load_boxes = dict(type="LoadAnnotations3D", with_seg=False, with_bbox_3d=True, with_velocity=True)
load_images = dict(type="LoadMultiViewImages")  # the stored size (image_hw) is the network input
bev_augment = dict(type="BEVAugment", rot_range=(-0.3927, 0.3927), scale_range=(0.95, 1.05), flip_x_prob=0.5,
                   flip_y_prob=0.5)
# LiDAR detectors
train_pipeline = [*load_points, load_boxes, bev_augment, dict(type="PackDetInputs")]
test_pipeline = [*load_points, load_boxes, dict(type="PackDetInputs")]
# camera detectors: images, LiDAR depth maps for the depth loss (made before the augmentation)
camera_train_pipeline = [*load_points, load_boxes, load_images, dict(type="PointsToDepthMaps"), bev_augment,
                         dict(type="PackDetInputs")]
camera_test_pipeline = [*load_points, load_boxes, load_images, dict(type="PackDetInputs")]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(type="InfiniteSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(**synthetic, split="train", num_samples=64, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(**synthetic, split="val", num_samples=64, pipeline=test_pipeline, test_mode=True),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="NuScenesDetMetric", classes=class_names, class_range={c: 30 for c in class_names})
test_evaluator = val_evaluator
