# OpenScene-style 3D distillation: cosine loss between student and fused 2D features, synthetic rooms.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_40e.py",
          "../_base_/models/spconv_unet_distill.py", "../_base_/datasets/synthetic_indoor_distill.py"]

model = dict(student=dict(channels=(16, 32, 64, 128)), connectors=dict(proj=dict(in_channels=16)),
             distill_losses=dict(_delete_=True, loss_cos=dict(type="CosineLoss")),
             loss_mapping=dict(_delete_=True, loss_cos=dict(pred="backbone", connector="proj", target="precomputed")))
train_cfg = dict(max_epochs=30, val_interval=10)
