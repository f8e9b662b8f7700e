"""Deployment: a ``Predictor`` for exported models over Paddle Inference or ONNX Runtime, with OpenCV
preprocessing. Standalone: imports nothing from ``data/`` or ``engine/`` (tested), so it can ship alone."""
from ..errors import PredictorError  # noqa: F401
from .onnx_backend import OnnxRuntimeBackend, onnxruntime_available  # noqa: F401
from .options import BACKENDS, PRECISIONS, PredictorOptions, check_options, cpu_supports_bf16  # noqa: F401
from .paddle_backend import PaddleBackend, config_calls  # noqa: F401
from .predictor import Predictor, expand_inputs, precision_agreement, resolve_backend  # noqa: F401
from .preprocess import Preprocessor  # noqa: F401
