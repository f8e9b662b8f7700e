"""Datasets and transforms built from the ``Data`` section of a config."""
from .datasets import DataError, class_names, DatasetInfo, LabeledDataset, build_dataset, read_image
from .transforms import ToChannels, build_transforms, default_transforms

__all__ = ["DataError", "class_names", "DatasetInfo", "LabeledDataset", "build_dataset", "read_image", "ToChannels",
           "build_transforms", "default_transforms"]
