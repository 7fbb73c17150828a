# Iteration-based schedule for the real-data LiDAR detector (4000 iterations, 2 x 40 frames, ~16.5 min on 2 cores
# under CPU bfloat16 autocast): AdamW, 60-iteration warm-up, cosine to 1 % of the lr.
max_iters = 4000
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=0.003, weight_decay=0.01),
                     clip_grad=dict(max_norm=35.0))
param_scheduler = [dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=60),
                   dict(type="CosineAnnealingLR", T_max=max_iters, eta_min=3e-5, by_epoch=False, begin=0,
                        end=max_iters)]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
