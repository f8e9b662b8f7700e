"""Paddle Inference predictor and its OpenCV preprocessing."""
from ..errors import PredictorError  # noqa: F401
from .predictor import (  # noqa: F401
                        Predictor,
                        PredictorOptions,
                        check_options,
                        config_calls,
                        cpu_supports_bf16,
                        expand_inputs,
                        precision_agreement,
)
from .preprocess import Preprocessor  # noqa: F401
