# Synthetic rooms for image -> 3D distillation: posed RGB-D frames for the 2D teacher, fused targets and
# super-points written next to the data by tools/fuse_features.py and tools/make_superpoints.py. The teacher
# learns on rooms of its own (teacher_training.dataset, other seeds): the student's rooms are not in it.
data_root = "data/synthetic_indoor_distill"
feature_dir = data_root + "/fused"
superpoint_dir = data_root + "/superpoints"
synthetic = dict(type="SyntheticIndoorDataset", data_root=data_root, seed=1, num_views=6, image_hw=(120, 160),
                 num_points=60000)
train_pipeline = [
    dict(type="LoadPointsFromFile", load_dim=6, use_dim=(0, 1, 2, 3, 4, 5), color_scale=255.0),
    dict(type="LoadFusedFeatures", feature_dir=feature_dir),
    dict(type="LoadSuperpoints", superpoint_dir=superpoint_dir),
    dict(type="RandomRotScaleFlip", rot_range=(-3.1416, 3.1416), scale_range=(0.9, 1.1), flip_prob=0.5),
    dict(type="PackPointInputs"),
]
test_pipeline = [
    dict(type="LoadPointsFromFile", load_dim=6, use_dim=(0, 1, 2, 3, 4, 5), color_scale=255.0),
    dict(type="LoadAnnotations3D", with_seg=True),
    dict(type="LoadSuperpoints", superpoint_dir=superpoint_dir),
    dict(type="PackPointInputs"),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False, sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(**synthetic, split="train", num_scenes=12, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False, sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(**synthetic, split="val", num_scenes=8, pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type="HungarianSegMetric")
test_evaluator = val_evaluator
# The 2D teacher's own "2D dataset": 2D labels only, rooms (seed 2) the student never sees. The weights in
# checkpoints/ were made by `make teacher` (tools/train_image_teacher.py with this dict, about 13 min on 2 cores).
teacher_training = dict(
    dataset=dict(type="SyntheticIndoorDataset", data_root="data/synthetic_indoor_2d", seed=2, split="train",
                 num_scenes=192, num_views=6, image_hw=(120, 160), num_points=2000),
    iters=6000)
# Offline fusion (tools/fuse_features.py): the 2D teacher and how its features reach the points.
fusion = dict(teacher=dict(type="ModuleTeacher", model=dict(type="TinySegNet", num_classes=10, feat_channels=32),
                           pretrained="checkpoints/tinysegnet_synthetic-indoor-2d.pth", stride=4),
              frame_step=1, border=2, visibility="auto", depth_tol=0.1, batch_frames=6, out_dir=feature_dir)
