# Drive&Segment on synthetic driving frames (pc_kd.experiments.drive_segment.Settings; `make demo-drive-segment`):
# LiDAR segments (range image, ground removal, beta > 10 deg, 20..100000 points; the ground one more segment) of 64
# training frames (seed 0), two cameras at 112 x 200, objects built of DETAILED_PARTS (wheels, stripes, heads; the
# paint pool shared by every class); masked 32 x 32 crops of every segment and view through a label-free TinySegNet
# (contrastive on the segment crops of 64 frames of seed 2: checkpoints/tinysegnet_contrastive_synthetic-driving.pth);
# mini-batch k-means into 12 clusters (6 classes: over-clustering, best of 5); a TinySegNet student initialised from
# the backbone, 600 iterations of cross-entropy on the pseudo-labels, scored with sliding windows on 16 frames of
# seed 1.
settings = dict(
    image_hw=(112, 200), cameras=(0.0, 180.0), num_objects=40, extent=25.0, detailed=True,
    train_frames=64, test_frames=16, backbone_frames=64, train_seed=0, test_seed=1, backbone_seed=2,
    azimuth_cols=900, splat_radius=1, crop_size=32, clusters=12, kmeans_restarts=5,
    student_iters=600, backbone_iters=600, backbone_batch=128, batch_size=8, lr=2e-3,
    window=(112, 112), window_stride=(56, 44), feat_channels=32, width=24,
)
