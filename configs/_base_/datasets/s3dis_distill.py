# S3DIS (tools/create_infos.py s3dis; posed frames of 2D-3D-S listed as `images` in the infos), Area 5 held out.
data_root = "data/s3dis"
feature_dir = data_root + "/fused"
superpoint_dir = data_root + "/superpoints"
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
    # EpochSeededSampler: augmentation drawn per (seed, epoch, sample), so a resumed run with fresh workers
    # draws what the uninterrupted run drew
    batch_size=4, num_workers=4, persistent_workers=True, sampler=dict(type="EpochSeededSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type="ConcatDataset", datasets=[
        dict(type="S3DISDataset", data_root=data_root, ann_file=f"s3dis_infos_Area_{a}.pkl", pipeline=train_pipeline)
        for a in (1, 2, 3, 4, 6)]))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(type="S3DISDataset", data_root=data_root, ann_file="s3dis_infos_Area_5.pkl",
                 pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type="HungarianSegMetric")
test_evaluator = val_evaluator
fusion = dict(teacher=dict(type="TimmTeacher", name="resnet50", out_index=1,
                           pretrained="checkpoints/resnet50_timm.pth", stride=4),
              frame_step=1, border=10, visibility="auto", depth_tol=0.25, batch_frames=8, out_dir=feature_dir)
