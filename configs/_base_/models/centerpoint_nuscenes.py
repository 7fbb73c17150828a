# CenterPoint on nuScenes (published settings): BEV grid +-54 m, head at 0.6 m (180 x 180 cells), six task
# groups, SECOND (128, 256) + FPN, per-task circle-NMS radii; each config sets its encoders from these two:
# 0.075 m voxels (1440 x 1440 x 40) -> x8, and ResNet-50 (256 x 704, stride 16) -> LSS with depth bins [2, 58) m
# at 0.5 m (112 bins) and the LiDAR depth loss (x3), on the same 180 x 180 grid.
voxel_lidar_encoder = dict(type="SparseEncoder8x", in_channels=5, point_cloud_range=[-54.0, -54.0, -5.0, 54.0, 54.0, 3.0],
                           voxel_size=(0.075, 0.075, 0.2))
lss_camera_encoder = dict(
    type="CameraBEVEncoder",
    image_encoder=dict(type="ImageEncoder", arch="resnet50", out_channels=256),
    view_transform=dict(type="LSSTransform", out_channels=80, depth_bins=(2.0, 58.0, 0.5), depth_loss_weight=3.0,
                        grid=dict(x_range=(-54.0, 54.0), y_range=(-54.0, 54.0), z_range=(-5.0, 3.0), cell=(0.6, 0.6))))
model = dict(
    type="BEVDetector",
    data_preprocessor=dict(type="DetDataPreprocessor"),
    backbone=dict(type="SECOND", in_channels=256, out_channels=(128, 256), layer_nums=(5, 5), layer_strides=(1, 2)),
    neck=dict(type="SECONDFPN", in_channels=(128, 256), out_channels=(256, 256), upsample_strides=(1, 2)),
    head=dict(type="CenterHead", in_channels=512, point_cloud_range=[-54.0, -54.0, -5.0, 54.0, 54.0, 3.0],
              out_cell=(0.6, 0.6),
              tasks=[dict(class_names=["car"]), dict(class_names=["truck", "construction_vehicle"]),
                     dict(class_names=["bus", "trailer"]), dict(class_names=["barrier"]),
                     dict(class_names=["motorcycle", "bicycle"]), dict(class_names=["pedestrian", "traffic_cone"])],
              nms_radius_sq=[4.0, 12.0, 10.0, 1.0, 0.85, 0.175], share_conv_channel=64, head_conv=64,
              post_center_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0]),
)
