# The upper bound of the distillation demo: the distillation configs' student (spconv U-Net, 16..128 channels)
# on the same synthetic rooms, trained with 3D labels instead of a teacher.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_40e.py",
          "../_base_/models/spconv_unet_seg.py", "../_base_/datasets/synthetic_indoor_distill.py"]

model = dict(data_preprocessor=dict(voxel_size=(0.1, 0.1, 0.1)), backbone=dict(channels=(16, 32, 64, 128)),
             decode_head=dict(in_channels=16, num_classes=10))
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type="LoadPointsFromFile", load_dim=6, use_dim=(0, 1, 2, 3, 4, 5), color_scale=255.0),
    dict(type="LoadAnnotations3D", with_seg=True),
    dict(type="RandomRotScaleFlip", rot_range=(-3.1416, 3.1416), scale_range=(0.9, 1.1), flip_prob=0.5),
    dict(type="PackPointInputs"),
]))
val_evaluator = dict(_delete_=True, type="SegMetric")
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(lr=0.02))  # 30 epochs at 0.004 leave the furniture classes unlearnt
train_cfg = dict(max_epochs=30, val_interval=10)
param_scheduler = [dict(type="CosineAnnealingLR", T_max=30, eta_min=1e-5, by_epoch=True, convert_to_iter_based=True)]
