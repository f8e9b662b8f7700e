"""Export for deployment: Paddle Inference (``paddle_inference.py``) with the BatchNorm folds each layer declares
(``fold.py``), ONNX and INT8 (``onnx.py``), the predictor's preprocessing (``preprocess.py``), all checked
(``exporter.py``)."""
from .exporter import FORMATS, export_from_config, export_model, export_registered
from .fold import fold_batchnorm, remaining_batchnorms
from .onnx import quantize_int8, to_onnx
from .paddle_inference import save_paddle

__all__ = ["FORMATS", "export_from_config", "export_model", "export_registered", "fold_batchnorm",
           "remaining_batchnorms", "quantize_int8", "to_onnx", "save_paddle"]
