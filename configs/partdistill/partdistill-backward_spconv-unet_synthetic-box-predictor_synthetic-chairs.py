# PartDistill's point student on synthetic chairs inside the Runner (tools/train.py): the spconv U-Net of the demo
# (0.04 m voxels of the unit sphere, xyz as features), PartDistill's forward distillation loss on the knowledge units
# of the synthetic 2D part-box predictor (no label read in training), backward distillation by
# BackwardDistillationHook (the plateau trigger, one snapshot of the student's labels, the units re-scored), 25 epochs
# of 16 shapes (the last incomplete batch dropped), Adam 3e-3 with a per-epoch cosine to 3e-5; the last epoch is
# scored on the 60 held-out test shapes (part mIoU; no checkpoint is chosen on them). The same settings as row (c) of
# `make demo-partdistill` (configs/partdistill/partdistill_spconv-unet_synthetic-box-predictor_synthetic-shapes.py).
# The shape sets first (about 2 minutes): pc-kd demo-partdistill --shapes-only
# Forward distillation only (row b): --cfg-options custom_hooks.0.enabled=False
_base_ = ["../_base_/default_runtime.py"]

data_root = "work_dirs/demo_partdistill"
shape_set = "2048pts_10views_128x128_miss0.3_wrong0.2_whole0.3.npz"  # what the shapes and units depend on
max_epochs = 25
model = dict(type="PartDistillSegmentor",
             data_preprocessor=dict(type="PointDataPreprocessor", voxel_size=(0.04, 0.04, 0.04)),
             backbone=dict(type="SpconvUNet", in_channels=6, channels=(16, 32, 64, 128)),
             decode_head=dict(type="SegHead", in_channels=16, num_classes=4))  # seat, back, leg, arm
train_pipeline = [dict(type="PartShapeAugment"), dict(type="PackPartUnitsInputs")]
test_pipeline = [dict(type="PackPartUnitsInputs")]
train_dataloader = dict(batch_size=16, num_workers=0, persistent_workers=False, drop_last=True,
                        sampler=dict(type="DefaultSampler", shuffle=True), collate_fn=dict(type="pseudo_collate"),
                        dataset=dict(type="PartUnitsDataset", data_root=data_root,
                                     ann_file=f"shapes_chair_seed0_200_{shape_set}", pipeline=train_pipeline))
val_dataloader = dict(batch_size=16, num_workers=0, persistent_workers=False,
                      sampler=dict(type="DefaultSampler", shuffle=False), collate_fn=dict(type="pseudo_collate"),
                      dataset=dict(type="PartUnitsDataset", data_root=data_root,
                                   ann_file=f"shapes_chair_seed1_60_{shape_set}", pipeline=test_pipeline,
                                   test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(type="PartMIoUMetric")
test_evaluator = val_evaluator
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="Adam", lr=3e-3))
param_scheduler = [dict(type="CosineAnnealingLR", T_max=max_epochs, eta_min=3e-5, by_epoch=True, begin=0,
                        end=max_epochs)]
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=max_epochs, val_interval=max_epochs)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
custom_hooks = [dict(type="BackwardDistillationHook", plateau_window=5, plateau_tol=0.01)]
default_hooks = dict(checkpoint=dict(type="CheckpointHook", interval=5, max_keep_ckpts=2, save_last=True,
                                     save_best=None),
                     logger=dict(type="LoggerHook", interval=4))
val_pictures = 0
