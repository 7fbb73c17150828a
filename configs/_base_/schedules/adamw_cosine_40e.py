optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="AdamW", lr=0.004, weight_decay=0.01),
                     clip_grad=dict(max_norm=10.0))
param_scheduler = [dict(type="CosineAnnealingLR", T_max=40, eta_min=1e-5, by_epoch=True, convert_to_iter_based=True)]
train_cfg = dict(type="EpochBasedTrainLoop", max_epochs=40, val_interval=10)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
