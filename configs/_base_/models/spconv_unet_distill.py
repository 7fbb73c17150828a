# Voxel student + projection to the teacher's width, distilled on super-point pooled targets (CMD loss);
# clustered for eval.
# 10 cm voxels suit the synthetic rooms (about one point per 9 cm of surface); the ScanNet / S3DIS configs set
# 2-3 cm.
model = dict(
    type="PointFeatureDistiller",
    data_preprocessor=dict(type="PointDataPreprocessor", voxel_size=(0.1, 0.1, 0.1)),
    student=dict(type="SpconvUNet", in_channels=6, channels=(32, 64, 128, 256)),
    recorders=dict(backbone=""),
    connectors=dict(proj=dict(type="PointProjection", in_channels=32, out_channels=32)),
    distill_losses=dict(loss_cmd=dict(type="CMDLoss")),
    # PointDC's super-voxel targets: each point distils the mean fused feature of its super-point
    loss_mapping=dict(loss_cmd=dict(pred="backbone", connector="proj", target="precomputed",
                                    pool_targets="superpoints")),
    feature=("backbone", "proj"),
)
custom_hooks = [dict(type="ClusterCentroidsHook")]
