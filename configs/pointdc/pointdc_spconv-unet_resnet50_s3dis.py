# PointDC stage 1 on S3DIS (train Areas 1-4, 6; test Area 5): CMD distillation into a spconv U-Net.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_40e.py",
          "../_base_/models/spconv_unet_distill.py", "../_base_/datasets/s3dis_distill.py"]

model = dict(data_preprocessor=dict(voxel_size=(0.03, 0.03, 0.03)), connectors=dict(proj=dict(out_channels=256)))
