# CenterPoint-style BEV detector sized for a CPU: pillar LiDAR encoder at 0.8 m (80 x 80 cells over +-32 m),
# a slim SECOND + FPN, and a CenterHead with 4 task groups over the 5 synthetic classes. The camera and fusion
# configs take ``lss_camera_encoder`` (small image encoder, stride 8, LSS with depth bins [2, 46) m at 0.5 m and
# the depth loss) on the same grid.
lss_camera_encoder = dict(
    type="CameraBEVEncoder",
    image_encoder=dict(type="ImageEncoder", arch="small", widths=(32, 48, 64), out_channels=64),
    view_transform=dict(type="LSSTransform", out_channels=32, depth_bins=(2.0, 46.0, 0.5), depth_loss_weight=3.0,
                        grid=dict(x_range=(-32.0, 32.0), y_range=(-32.0, 32.0), z_range=(-5.0, 3.0), cell=(0.8, 0.8))))
model = dict(
    type="BEVDetector",
    data_preprocessor=dict(type="DetDataPreprocessor"),
    lidar_encoder=dict(type="PillarBEVEncoder", in_channels=5,
                       point_cloud_range=[-32.0, -32.0, -5.0, 32.0, 32.0, 3.0],
                       pillar_size=(0.8, 0.8), out_channels=32),
    backbone=dict(type="SECOND", in_channels=32, out_channels=(32, 64, 128), layer_nums=(2, 3, 3),
                  layer_strides=(1, 2, 2)),
    neck=dict(type="SECONDFPN", in_channels=(32, 64, 128), out_channels=(32, 32, 32), upsample_strides=(1, 2, 4)),
    head=dict(type="CenterHead", in_channels=96, point_cloud_range=[-32.0, -32.0, -5.0, 32.0, 32.0, 3.0],
              out_cell=(0.8, 0.8),
              tasks=[dict(class_names=["car"]), dict(class_names=["truck"]),
                     dict(class_names=["pedestrian", "traffic_cone"]), dict(class_names=["barrier"])],
              nms_radius_sq=[4.0, 12.0, 0.175, 1.0], share_conv_channel=32, head_conv=16,
              post_center_range=[-40.0, -40.0, -10.0, 40.0, 40.0, 10.0]),
)
