"""Deployment: a ``Predictor`` for exported models over the backends of ``backends.BACKENDS`` (Paddle Inference,
ONNX Runtime, OpenVINO), with OpenCV preprocessing. Standalone: imports nothing from ``data/`` or ``engine/``
(tested), so it can ship alone."""
from ..errors import PredictorError  # noqa: F401
from . import backends, model_folder  # noqa: F401
from .backend import Backend  # noqa: F401
from .backends import check_options  # noqa: F401
from .options import PredictorOptions, cpu_supports_bf16  # noqa: F401
from .paddle_backend import config_calls  # noqa: F401
from .predictor import Predictor, expand_inputs, precision_agreement  # noqa: F401
from .preprocess import Preprocessor  # noqa: F401
