# Real nuScenes LiDAR key frames as point clouds: scene-0523 (Boston, 40 frames) to train, scene-0916 (Singapore,
# 41 frames) to score. Per-point labels come from the 3D boxes (NuScenesPointDataset's classes); the targets of
# distillation are the Cityscapes ESPNetv2 features fused into the points from the six cameras. Info files, labels
# and fused features are written by `make demo-real-teachers` (pc_kd.experiments.real_nuscenes_points.prepare)
# under data_root; the samples are read in place from the real-data folder.
data_root = "work_dirs/demo_real_teachers/points"
feature_dir = data_root + "/fused"
# x y z (LiDAR frame, metres) + features: intensity 0..255 -> 0..1 and the height z again (metres; sparse
# convolutions see only relative positions, and the height above the road tells ground from objects); the ring
# index is left out
load_points = dict(type="LoadPointsFromFile", load_dim=5, use_dim=(0, 1, 2, 3, 2), color_scale=(255.0, 1.0))
augment = dict(type="RandomRotScaleFlip", rot_range=(-3.1416, 3.1416), scale_range=(0.95, 1.05), flip_prob=0.5)
train_pipeline = [load_points, dict(type="LoadFusedFeatures", feature_dir=feature_dir), augment,
                  dict(type="PackPointInputs")]
# the upper bound's: the box-derived labels instead of the teacher's features
labelled_train_pipeline = [load_points, dict(type="LoadAnnotations3D", with_seg=True), augment,
                           dict(type="PackPointInputs")]
test_pipeline = [load_points, dict(type="LoadAnnotations3D", with_seg=True),
                 dict(type="LoadFusedFeatures", feature_dir=feature_dir), dict(type="PackPointInputs")]
points = dict(type="NuScenesPointDataset", data_root=data_root)
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(**points, ann_file="nuscenes_points_train.pkl", pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False, sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(**points, ann_file="nuscenes_points_val.pkl", pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type="SegMetric")
test_evaluator = val_evaluator
