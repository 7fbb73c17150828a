"""Runner helpers: safe checkpoint loading and atomic saving, config checks, hooks, passes over a loader."""
from .checkpoint import (AtomicLocalBackend, PortableHistoryBuffer, check_state_dict_matches,
                         load_local_checkpoint, safe_globals, setup_safe_checkpointing)
from .clustering_hooks import ClusterCentroidsHook, ReclusterHook
from .hooks import PortableCheckpointHook
from .inference import point_features, predict_first_test_sample, superpoint_features
from .runner import add_runner_args, bare_model, build_runner, check_config_keys, load_config, load_weights_strict

__all__ = ["AtomicLocalBackend", "PortableHistoryBuffer", "check_state_dict_matches", "load_local_checkpoint",
           "safe_globals", "setup_safe_checkpointing", "ClusterCentroidsHook", "ReclusterHook",
           "PortableCheckpointHook", "point_features", "predict_first_test_sample", "superpoint_features",
           "add_runner_args", "bare_model", "build_runner", "check_config_keys", "load_config", "load_weights_strict"]
