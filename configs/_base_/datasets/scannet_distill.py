# ScanNet v2 (tools/create_infos.py scannet, frames exported from .sens) for image -> 3D distillation.
data_root = "data/scannet"
feature_dir = data_root + "/fused"
superpoint_dir = data_root + "/superpoints"
scannet = dict(type="ScanNetDataset", data_root=data_root)
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
    dataset=dict(**scannet, ann_file="scannet_infos_train.pkl", pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=2, persistent_workers=True, sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(**scannet, ann_file="scannet_infos_val.pkl", pipeline=test_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type="HungarianSegMetric")
test_evaluator = val_evaluator
# Your 2D teacher: any timm model with local weights (pc_kd never downloads), stride-4 maps, every 20th frame
# (create_infos keeps every 20th already), depth visibility from the exported depth images.
fusion = dict(teacher=dict(type="TimmTeacher", name="resnet50", out_index=1,
                           pretrained="checkpoints/resnet50_timm.pth", stride=4),
              frame_step=1, border=10, visibility="auto", depth_tol=0.25, batch_frames=8, out_dir=feature_dir)
