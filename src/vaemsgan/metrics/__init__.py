"""Evaluation metrics as pure functions on tensors/arrays: image statistics, feature metrics, distances."""

from vaemsgan.metrics.distances import ks_statistic, mean_ci, wasserstein1
from vaemsgan.metrics.feature_metrics import (
    MIN_RECOMMENDED_FID_SAMPLES,
    bootstrap_ci,
    density_coverage,
    fid,
    fid_sample_warning,
    frechet_distance,
    gaussian_stats,
    kid,
    knn_radii,
    knn_radii_pair,
    precision_recall,
    precision_recall_density_coverage,
)
from vaemsgan.metrics.image_stats import (
    STATISTICS,
    class_table,
    format_class_table,
    image_statistics,
    statistics_by_class,
)

__all__ = [
    "MIN_RECOMMENDED_FID_SAMPLES",
    "STATISTICS",
    "bootstrap_ci",
    "class_table",
    "density_coverage",
    "fid",
    "fid_sample_warning",
    "format_class_table",
    "frechet_distance",
    "gaussian_stats",
    "image_statistics",
    "kid",
    "knn_radii",
    "knn_radii_pair",
    "ks_statistic",
    "mean_ci",
    "precision_recall",
    "precision_recall_density_coverage",
    "statistics_by_class",
    "wasserstein1",
]
