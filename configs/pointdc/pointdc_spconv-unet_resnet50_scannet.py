# PointDC stage 1 on ScanNet v2: CMD distillation of fused 2D features into a spconv U-Net (2 cm voxels).
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_40e.py",
          "../_base_/models/spconv_unet_distill.py", "../_base_/datasets/scannet_distill.py"]

model = dict(data_preprocessor=dict(voxel_size=(0.02, 0.02, 0.02)),
             connectors=dict(proj=dict(out_channels=256)))  # resnet50 layer1: 256 channels
