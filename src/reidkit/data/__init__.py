"""Datasets in, ``ReidDataset`` out: readers for the standard benchmarks and user data, image checks, torch glue."""

from reidkit.data.images import read_image, verify_images
from reidkit.data.loading import DATASETS, load_dataset
from reidkit.data.pk_sampler import PKSampler
from reidkit.data.shared_benchmark import (
    prepare_shared_cuhk03,
    prepare_shared_market1501,
    prepare_shared_market1501_attributes,
)
from reidkit.data.torch_dataset import ImageDataset, relabel
from reidkit.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transforms
from reidkit.data.types import ImageRecord, ReidDataset

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DATASETS",
    "ImageDataset",
    "ImageRecord",
    "PKSampler",
    "ReidDataset",
    "build_transforms",
    "load_dataset",
    "prepare_shared_cuhk03",
    "prepare_shared_market1501",
    "prepare_shared_market1501_attributes",
    "read_image",
    "relabel",
    "verify_images",
]
