# Voxel student + projection to the teacher's width, distilled on per-point targets; clustered for eval.
model = dict(
    type="PointFeatureDistiller",
    data_preprocessor=dict(type="PointDataPreprocessor", voxel_size=(0.05, 0.05, 0.05)),
    student=dict(type="SpconvUNet", in_channels=6, channels=(32, 64, 128, 256)),
    recorders=dict(backbone=""),
    connectors=dict(proj=dict(type="PointProjection", in_channels=32, out_channels=32)),
    distill_losses=dict(loss_cmd=dict(type="CMDLoss")),
    loss_mapping=dict(loss_cmd=dict(pred="backbone", connector="proj", target="precomputed")),
    feature=("backbone", "proj"),
)
custom_hooks = [dict(type="ClusterCentroidsHook")]
