"""Runner helpers: safe checkpoint loading and atomic saving, config checks, hooks."""
from .checkpoint import (AtomicLocalBackend, PortableHistoryBuffer, check_state_dict_matches,
                         load_local_checkpoint, safe_globals, setup_safe_checkpointing)
from .hooks import PortableCheckpointHook
from .runner import add_runner_args, build_runner, check_config_keys, load_config, load_weights_strict

__all__ = ["AtomicLocalBackend", "PortableHistoryBuffer", "check_state_dict_matches", "load_local_checkpoint",
           "safe_globals", "setup_safe_checkpointing", "PortableCheckpointHook", "build_runner",
           "check_config_keys", "load_weights_strict", "add_runner_args", "load_config"]
