"""Datasets: the in-memory ``Dataset`` every loader returns, and format auto-detection."""

from .dataset import (
    FER2013_CLASSES,
    MIXED_TEST,
    SPLITS,
    Dataset,
    DatasetFormat,
    canonical_split,
    class_name_tuple,
    per_image_codes,
)
from .loading import load_dataset

__all__ = ["FER2013_CLASSES", "MIXED_TEST", "SPLITS", "Dataset", "DatasetFormat", "canonical_split", "class_name_tuple",
           "load_dataset", "per_image_codes"]
