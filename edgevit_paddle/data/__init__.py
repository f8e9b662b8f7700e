"""Datasets and transforms built from the ``Data`` section of a config."""
from ..errors import DataError
from ..image import read_image
from .datasets import DATASET_NAMES, build_dataset, class_names, eval_transforms, transforms_spec
from .labeled import DatasetInfo, LabeledDataset
from .transforms import ToChannels, build_transforms, create_transform, default_transforms, resolve_data_config

__all__ = ["DATASET_NAMES", "DataError", "class_names", "DatasetInfo", "LabeledDataset", "build_dataset",
           "eval_transforms", "transforms_spec", "read_image", "ToChannels", "build_transforms", "default_transforms",
           "resolve_data_config", "create_transform"]
