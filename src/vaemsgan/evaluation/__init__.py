"""Evaluation of generated images: classifier cross-validation, feature extractors, memorisation, the report,
the training monitor (a callback given to the Trainer) and curation of generated images."""

from vaemsgan.evaluation.classifier import (
    ClassifierConfig,
    SmallVGG,
    accuracy,
    features,
    predict,
    train_classifier,
)
from vaemsgan.evaluation.evaluate import PARTS, EvalOptions, evaluate, match_classes, quick_options

__all__ = [
    "PARTS",
    "ClassifierConfig",
    "EvalOptions",
    "SmallVGG",
    "accuracy",
    "evaluate",
    "features",
    "match_classes",
    "predict",
    "quick_options",
    "train_classifier",
]
