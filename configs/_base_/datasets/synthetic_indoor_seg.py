# Synthetic rooms (generated into data_root on first use, seconds per scene) in the ScanNet layout.
data_root = "data/synthetic_indoor"
synthetic = dict(type="SyntheticIndoorDataset", data_root=data_root, seed=0, num_views=3, image_hw=(240, 320),
                 num_points=20000)
train_pipeline = [
    dict(type="LoadPointsFromFile", load_dim=6, use_dim=(0, 1, 2, 3, 4, 5), color_scale=255.0),
    dict(type="LoadAnnotations3D", with_seg=True),
    dict(type="RandomRotScaleFlip", rot_range=(-3.1416, 3.1416), scale_range=(0.9, 1.1), flip_prob=0.5),
    dict(type="PackPointInputs"),
]
test_pipeline = [
    dict(type="LoadPointsFromFile", load_dim=6, use_dim=(0, 1, 2, 3, 4, 5), color_scale=255.0),
    dict(type="LoadAnnotations3D", with_seg=True),
    dict(type="PackPointInputs"),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=True),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(**synthetic, split="train", num_scenes=16, pipeline=train_pipeline),
)
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=False),
    collate_fn=dict(type="pseudo_collate"),
    dataset=dict(**synthetic, split="val", num_scenes=2, pipeline=test_pipeline, test_mode=True),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="SegMetric")
test_evaluator = val_evaluator
