# Drive&Segment's 2D student in the Runner: a TinySegNet initialised from the label-free backbone
# (checkpoints/tinysegnet_contrastive_synthetic-driving.pth, classifier new), per-pixel cross-entropy on the 12
# pseudo-classes of the LiDAR segments (unlabelled pixels ignored), random flips, 600 iterations of batch 8, AdamW
# 2e-3 with a cosine schedule; sliding windows of 112 x 112 every 56 x 44 pixels; one Hungarian matching over the
# 32 val images (16 frames of seed 1, two cameras), unmatched clusters counted wrong. The data is what
# `make demo-drive-segment` writes (seed 0's pseudo-labels). The upper bound, the same student on the true classes:
#   --cfg-options train_dataloader.dataset.ann_file=train_gt_targets.json model.net.num_classes=6
_base_ = ["../_base_/default_runtime.py"]

data_root = "work_dirs/demo_drive_segment/pseudo_label_dataset"
max_iters = 600
model = dict(type="ImageSegmentor", net=dict(type="TinySegNet", num_classes=12, feat_channels=32, width=24),
             init_trunk_from="checkpoints/tinysegnet_contrastive_synthetic-driving.pth",
             window=(112, 112), window_stride=(56, 44),
             data_preprocessor=dict(type="ImageSegDataPreprocessor", flip_prob=0.5))
pipeline = [dict(type="LoadImageWithTargets"), dict(type="PackImageSegInputs")]
train_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                        sampler=dict(type="DefaultSampler", shuffle=True), collate_fn=dict(type="pseudo_collate"),
                        dataset=dict(type="ImageSegmentationDataset", data_root=data_root, ann_file="train.json",
                                     pipeline=pipeline))
val_dataloader = dict(batch_size=8, num_workers=0, persistent_workers=False,
                      sampler=dict(type="DefaultSampler", shuffle=False), collate_fn=dict(type="pseudo_collate"),
                      dataset=dict(type="ImageSegmentationDataset", data_root=data_root, ann_file="val.json",
                                   pipeline=pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type="HungarianSegMetric", unmatched="wrong")
test_evaluator = val_evaluator
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=0.002, weight_decay=0.01))
param_scheduler = [dict(type="CosineAnnealingLR", T_max=max_iters, eta_min=2e-5, by_epoch=False, begin=0,
                        end=max_iters)]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=max_iters, by_epoch=False, max_keep_ckpts=1,
                                     save_last=True),
                     logger=dict(type="LoggerHook", interval=50))
log_processor = dict(type="LogProcessor", window_size=20, by_epoch=False)
