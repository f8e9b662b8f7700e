"""Paddle Inference predictor and its OpenCV preprocessing."""
from .predictor import (Predictor, PredictorError, PredictorOptions, check_options, config_calls,  # noqa: F401
                        cpu_supports_bf16, expand_inputs, precision_agreement)
from .preprocess import Preprocessor  # noqa: F401
