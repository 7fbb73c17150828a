default_scope = "pc_kd"
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=5),
    param_scheduler=dict(type="ParamSchedulerHook"),
    # also keeps the checkpoint of the best validation score (the metric's first key: mIoU, nuScenes mAP)
    checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=3, save_last=True, save_best="auto",
                    rule="greater"),
    sampler_seed=dict(type="DistSamplerSeedHook"),
)
# at each validation, top-view pictures of the first val_pictures samples (prediction beside the ground truth) go
# to <work_dir>/pictures/<iter_N | epoch_N>/ (PredictionPicturesHook, added by pc_kd.engine.build_runner; 0: none)
val_pictures = 2
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0),
               dist_cfg=dict(backend="nccl"))
log_processor = dict(type="LogProcessor", window_size=5, by_epoch=True)
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
