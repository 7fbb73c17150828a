# PointDC stage 2 on the synthetic rooms: start from the distilled student (load_from), train on pseudo-labels
# of super-point k-means into 20 primitives, re-clustered every 5 epochs; evaluated like stage 1.
_base_ = ["../_base_/default_runtime.py", "../_base_/schedules/adamw_cosine_40e.py",
          "../_base_/models/spconv_unet_distill.py", "../_base_/datasets/synthetic_indoor_distill.py"]

model = dict(type="SuperPointClustering", num_primitives=20, temperature=0.1,
             student=dict(channels=(16, 32, 64, 128)), connectors=dict(proj=dict(in_channels=16)),
             distill_losses=dict(_delete_=True), loss_mapping=dict(_delete_=True))
custom_hooks = [dict(type="ClusterCentroidsHook"), dict(type="ReclusterHook", interval=5)]
load_from = "work_dirs/demo/epoch_30.pth"  # the stage-1 (pointdc_spconv-unet_tinysegnet_synthetic-indoor) result
optim_wrapper = dict(optimizer=dict(lr=0.001))
train_cfg = dict(max_epochs=10, val_interval=5)
param_scheduler = [dict(type="CosineAnnealingLR", T_max=10, eta_min=1e-5, by_epoch=True, convert_to_iter_based=True)]
