"""Models: backbones, segmentors, BEV detectors and their necks, data preprocessors, distillers, losses."""
from .backbones import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .detectors import *  # noqa: F401,F403
from .distillers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .segmentors import *  # noqa: F401,F403
from .pretrainers import *  # noqa: F401,F403
from pc_kd import heads  # noqa: F401,E402  (registers the heads the models build)
