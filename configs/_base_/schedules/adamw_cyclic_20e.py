# nuScenes detection schedule: AdamW, one cycle up to 1e-3 over 20 epochs (40 % rising), gradient clipping at 35.
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=1e-4, weight_decay=0.01),
                     clip_grad=dict(max_norm=35.0))
param_scheduler = [dict(type="OneCycleLR", eta_max=1e-3, total_steps=20, pct_start=0.4, by_epoch=True,
                        convert_to_iter_based=True)]
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=20, val_interval=20)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
