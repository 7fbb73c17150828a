"""Runner helpers: safe checkpoint loading, config checks (hooks join them)."""
from .checkpoint import (check_state_dict_matches, load_local_checkpoint, register_safe_checkpoint_loader,
                         safe_globals)
from .hooks import PortableCheckpointHook
from .runner import build_runner, check_config_keys, load_weights_strict

__all__ = ["check_state_dict_matches", "load_local_checkpoint", "register_safe_checkpoint_loader",
           "safe_globals", "PortableCheckpointHook", "build_runner", "check_config_keys", "load_weights_strict"]
