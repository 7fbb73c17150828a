# Online distillation: the frozen 2D teacher runs inside the training step on the scene's posed frames (no
# fused-feature files); cosine loss, synthetic rooms. Teacher weights: tools/train_image_teacher.py.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_40e.py",
          "../_base_/models/spconv_unet_distill.py", "../_base_/datasets/synthetic_indoor_distill.py"]

model = dict(student=dict(channels=(16, 32, 64, 128)), connectors=dict(proj=dict(in_channels=16)),
             teacher={{_base_.fusion.teacher}},  # the dataset base config's teacher
             online_fusion=dict(visibility="auto", depth_tol=0.1, border=2),
             distill_losses=dict(_delete_=True, loss_cos=dict(type="CosineLoss")),
             loss_mapping=dict(_delete_=True, loss_cos=dict(pred="backbone", connector="proj", target="online")))
train_dataloader = dict(dataset=dict(pipeline=[
    dict(type="LoadPointsFromFile", load_dim=6, use_dim=(0, 1, 2, 3, 4, 5), color_scale=255.0),
    dict(type="LoadPosedFrames", frame_step=1),
    dict(type="LoadSuperpoints", superpoint_dir={{_base_.superpoint_dir}}),
    dict(type="RandomRotScaleFlip", rot_range=(-3.1416, 3.1416), scale_range=(0.9, 1.1), flip_prob=0.5),
    dict(type="PackPointInputs"),
]))
train_cfg = dict(max_epochs=30, val_interval=10)
