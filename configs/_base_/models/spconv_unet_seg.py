# Sparse-conv U-Net semantic segmentor over 5 cm voxels; voxel features = rgb (0..1) + point offsets (3).
model = dict(
    type="SparseSegmentor",
    data_preprocessor=dict(type="PointDataPreprocessor", voxel_size=(0.05, 0.05, 0.05)),
    backbone=dict(type="SpconvUNet", in_channels=6, channels=(32, 64, 128, 256)),
    decode_head=dict(type="SegHead", in_channels=32, num_classes=20),
)
