"""Runner helpers: safe checkpoint loading and atomic saving, config checks, hooks, passes over a loader."""
from .checkpoint import (AtomicLocalBackend, CheckpointFileError, CheckpointMismatchError, PortableHistoryBuffer,
                         check_state_dict_matches, load_local_checkpoint, safe_globals, setup_safe_checkpointing)
from .clustering_hooks import ClusterCentroidsHook, ReclusterHook
from .hooks import PortableCheckpointHook, PredictionPicturesHook, RandomStateHook, SavePredictionsHook
from .part_distill_hooks import BackwardDistillationHook
from .mixed_precision import AMP_DTYPES, BFloat16OptimWrapper, check_amp_option, cpu_has_native_bfloat16, enable_amp
from .inference import point_features, predict_first_test_sample, superpoint_features
from .config_checks import ConfigError, check_option_keys, load_checked_config
from .runner import (Interrupted, PcKdRunner, add_runner_args, bare_model, build_runner, check_config_keys,
                     check_writable_folder, exit_on_user_error, latest_checkpoint, load_config, load_weights_strict,
                     resume_settings)
from .sync_bn import CpuDistributedDataParallel, ProcessGroupBatchNorm, to_process_group_batchnorm

__all__ = ["AtomicLocalBackend", "CheckpointFileError", "CheckpointMismatchError", "Interrupted",
           "check_writable_folder", "latest_checkpoint", "ConfigError", "check_option_keys", "load_checked_config",
           "PcKdRunner", "exit_on_user_error", "resume_settings", "PortableHistoryBuffer",
           "check_state_dict_matches", "load_local_checkpoint", "safe_globals", "setup_safe_checkpointing",
           "ClusterCentroidsHook", "ReclusterHook", "PortableCheckpointHook", "PredictionPicturesHook",
           "RandomStateHook", "SavePredictionsHook", "point_features", "predict_first_test_sample",
           "superpoint_features", "add_runner_args", "bare_model", "build_runner", "check_config_keys",
           "load_config", "load_weights_strict", "CpuDistributedDataParallel", "ProcessGroupBatchNorm",
           "to_process_group_batchnorm", "AMP_DTYPES", "BFloat16OptimWrapper", "check_amp_option",
           "cpu_has_native_bfloat16", "enable_amp", "BackwardDistillationHook"]
