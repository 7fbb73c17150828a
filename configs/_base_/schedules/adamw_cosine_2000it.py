# Iteration-based schedule for the CPU runs on real nuScenes points (2000 iterations): AdamW, 30-iteration warm-up, cosine to 1 % of the lr.
max_iters = 2000
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=0.003, weight_decay=0.01),
                     clip_grad=dict(max_norm=35.0))
param_scheduler = [dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=30),
                   dict(type="CosineAnnealingLR", T_max=max_iters, eta_min=3e-5, by_epoch=False, begin=0,
                        end=max_iters)]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
