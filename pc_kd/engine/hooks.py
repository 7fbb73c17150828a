"""Runner hooks."""
from mmengine.hooks import Hook

from pc_kd.registry import HOOKS

from .checkpoint import PortableHistoryBuffer


@HOOKS.register_module()
class PortableCheckpointHook(Hook):
    """Store the message hub's log buffers as :class:`PortableHistoryBuffer` in every checkpoint, so that the
    Runner's own checkpoints resume under ``torch.load(weights_only=True)`` (added by ``build_runner``)."""

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        hub = checkpoint.get("message_hub")
        if isinstance(hub, dict) and isinstance(hub.get("log_scalars"), dict):
            hub["log_scalars"] = {k: PortableHistoryBuffer.from_buffer(v) for k, v in hub["log_scalars"].items()}
