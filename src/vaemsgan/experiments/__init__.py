"""`vaemsgan reproduce`: the paper's experiments and our baselines as resumable, budgeted runs."""

from vaemsgan.experiments.context import ReproduceOptions, quick
from vaemsgan.experiments.registry import EXPERIMENTS, ExperimentSpec, RunSpec, expand, experiment_names
from vaemsgan.experiments.reproduce import reproduce
from vaemsgan.experiments.runner import plan_runs

__all__ = [
    "EXPERIMENTS",
    "ExperimentSpec",
    "ReproduceOptions",
    "RunSpec",
    "expand",
    "experiment_names",
    "plan_runs",
    "quick",
    "reproduce",
]
