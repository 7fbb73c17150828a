# Supervised smoke path of the whole stack: spconv U-Net on synthetic rooms, 10 classes, CPU-friendly.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_40e.py",
          "../_base_/models/spconv_unet_seg.py", "../_base_/datasets/synthetic_indoor_seg.py"]

model = dict(data_preprocessor=dict(voxel_size=(0.1, 0.1, 0.1)), backbone=dict(channels=(16, 32, 64, 128)),
             decode_head=dict(in_channels=16, num_classes=10))
optim_wrapper = dict(optimizer=dict(lr=0.02))
