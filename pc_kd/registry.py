"""pc_kd registries: children of mmengine's roots, scope ``pc_kd``.

Modules are imported lazily from ``locations`` the first time a registry is searched, so configs can name
``type='SpconvUNet'`` (with ``default_scope='pc_kd'``) or pass the class object itself. Hooks and the
CPU DDP wrapper live in ``pc_kd.engine`` only; loops, optimisers and schedulers are mmengine's own, samplers and
optimiser wrappers too but one each.
"""
import mmengine.registry as _mmengine_registry
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import Registry

MODELS = Registry("model", parent=MMENGINE_MODELS, scope="pc_kd",
                  locations=["pc_kd.models", "pc_kd.heads"])
DATASETS = Registry("dataset", parent=MMENGINE_DATASETS, scope="pc_kd", locations=["pc_kd.datasets"])
TRANSFORMS = Registry("transform", parent=MMENGINE_TRANSFORMS, scope="pc_kd", locations=["pc_kd.datasets"])
METRICS = Registry("metric", parent=MMENGINE_METRICS, scope="pc_kd", locations=["pc_kd.evaluation"])
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, scope="pc_kd", locations=["pc_kd.engine"])
MODEL_WRAPPERS = Registry("model_wrapper", parent=_mmengine_registry.MODEL_WRAPPERS, scope="pc_kd",
                          locations=["pc_kd.engine"])
DATA_SAMPLERS = Registry("data sampler", parent=_mmengine_registry.DATA_SAMPLERS, scope="pc_kd",
                         locations=["pc_kd.datasets"])
OPTIM_WRAPPERS = Registry("optim_wrapper", parent=_mmengine_registry.OPTIM_WRAPPERS, scope="pc_kd",
                          locations=["pc_kd.engine"])

# mmengine builds its own loops, optimisers, schedulers, samplers, log processors and visualisation backends
# under default_scope='pc_kd' too. pc_kd registers one sampler (EpochSeededSampler), one optimiser wrapper
# (BFloat16OptimWrapper) and none of the others; an empty child of each root lets those builds fall back to
# mmengine's classes silently instead of warning once per build that the scope is missing.
SCOPE_ALIASES = [DATA_SAMPLERS, OPTIM_WRAPPERS] + [Registry(root.name, parent=root, scope="pc_kd") for root in (
    _mmengine_registry.LOOPS, _mmengine_registry.LOG_PROCESSORS, _mmengine_registry.OPTIM_WRAPPER_CONSTRUCTORS,
    _mmengine_registry.OPTIMIZERS, _mmengine_registry.PARAM_SCHEDULERS, _mmengine_registry.VISBACKENDS,
    _mmengine_registry.VISUALIZERS)]
