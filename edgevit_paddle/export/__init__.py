"""Export: dygraph -> Paddle Inference (``paddle_inference.py``), with the BatchNorm folds each layer declares
(``fold.py``)."""
from .fold import fold_batchnorm, remaining_batchnorms
from .paddle_inference import (
                               export_from_config,
                               export_model,
                               export_registered,
                               preprocessing_from_cfg,
                               preprocessing_from_transforms,
                               read_labels,
)

__all__ = ["fold_batchnorm", "remaining_batchnorms", "export_from_config", "export_model", "export_registered",
           "preprocessing_from_cfg", "preprocessing_from_transforms", "read_labels"]
