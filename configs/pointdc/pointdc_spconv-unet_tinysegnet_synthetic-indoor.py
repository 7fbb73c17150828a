# PointDC-style cross-modal distillation (CMD loss) of a rendered-image teacher into a spconv U-Net, on the
# synthetic rooms; evaluated by super-point clustering + Hungarian mIoU. The README demo runs this.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_40e.py",
          "../_base_/models/spconv_unet_distill.py", "../_base_/datasets/synthetic_indoor_distill.py"]

model = dict(student=dict(channels=(16, 32, 64, 128)), connectors=dict(proj=dict(in_channels=16)))
train_cfg = dict(max_epochs=30, val_interval=10)
param_scheduler = [dict(type="CosineAnnealingLR", T_max=30, eta_min=1e-5, by_epoch=True, convert_to_iter_based=True)]
