"""Labelled image sets in memory: ImageFolder paths, Fashion-MNIST and its embedded mini subset."""

from vaemsgan.data.check import CheckReport, ClassReport, check_data
from vaemsgan.data.dataset import BUILTIN_SOURCES, ImageSet, load_from_config, load_images
from vaemsgan.data.fashion_mnist import FASHION_MNIST_CLASSES

__all__ = [
    "BUILTIN_SOURCES",
    "FASHION_MNIST_CLASSES",
    "CheckReport",
    "ClassReport",
    "ImageSet",
    "check_data",
    "load_from_config",
    "load_images",
]
