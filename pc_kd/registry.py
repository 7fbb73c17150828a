"""pc_kd registries: children of mmengine's roots, scope ``pc_kd``.

Modules are imported lazily from ``locations`` the first time a registry is searched, so configs can name
``type='SpconvUNet'`` (with ``default_scope='pc_kd'``) or pass the class object itself.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import OPTIMIZERS as MMENGINE_OPTIMIZERS
from mmengine.registry import PARAM_SCHEDULERS as MMENGINE_PARAM_SCHEDULERS
from mmengine.registry import Registry

MODELS = Registry("model", parent=MMENGINE_MODELS, scope="pc_kd",
                  locations=["pc_kd.models", "pc_kd.heads"])
DATASETS = Registry("dataset", parent=MMENGINE_DATASETS, scope="pc_kd", locations=["pc_kd.datasets"])
DATA_SAMPLERS = Registry("data sampler", parent=MMENGINE_DATA_SAMPLERS, scope="pc_kd",
                         locations=["pc_kd.datasets"])
TRANSFORMS = Registry("transform", parent=MMENGINE_TRANSFORMS, scope="pc_kd", locations=["pc_kd.datasets"])
METRICS = Registry("metric", parent=MMENGINE_METRICS, scope="pc_kd", locations=["pc_kd.evaluation"])
HOOKS = Registry("hook", parent=MMENGINE_HOOKS, scope="pc_kd", locations=["pc_kd.engine", "pc_kd.heads", "pc_kd.models"])
LOOPS = Registry("loop", parent=MMENGINE_LOOPS, scope="pc_kd", locations=["pc_kd.engine"])
VISUALIZERS = Registry("visualizer", parent=MMENGINE_VISUALIZERS, scope="pc_kd",
                       locations=["pc_kd.visualization"])
OPTIMIZERS = Registry("optimizer", parent=MMENGINE_OPTIMIZERS, scope="pc_kd", locations=["pc_kd.engine"])
OPTIM_WRAPPERS = Registry("optim_wrapper", parent=MMENGINE_OPTIM_WRAPPERS, scope="pc_kd", locations=["pc_kd.engine"])
OPTIM_WRAPPER_CONSTRUCTORS = Registry("optimizer wrapper constructor", parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                      scope="pc_kd", locations=["pc_kd.engine"])
PARAM_SCHEDULERS = Registry("parameter scheduler", parent=MMENGINE_PARAM_SCHEDULERS, scope="pc_kd",
                            locations=["pc_kd.engine"])
