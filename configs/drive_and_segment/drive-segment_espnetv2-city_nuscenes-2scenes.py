# Drive&Segment on the two REAL nuScenes scenes (pc_kd.experiments.drive_segment_real; `python
# tools/demo_drive_segment.py --real`): LiDAR segments of scene-0523's 40 key frames (32 rings x 1090 azimuth steps)
# cut from the six cameras at 225 x 400 as masked 64 x 64 crops, described by the ESPNetv2 Cityscapes encoder
# (stride 16; trained WITH Cityscapes labels), mini-batch k-means into 16 clusters, the same network with a new
# classifier trained 300 iterations on the pseudo-labels, scored on scene-0916's sparse labels.
settings = dict(
    image_hw=(225, 400), azimuth_cols=1090, splat_radius=1, crop_size=64, clusters=16, kmeans_restarts=5,
    student_iters=300, batch_size=4, lr=1e-3,
)
