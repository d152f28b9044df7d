"""The monitor's feature space (issue 23): `train.monitor_classifier` picks the classifier the monitor and the
`classifier` curation filter measure in, and a run judged by a named judge is monitored in its features."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from vaemsgan.config import Config
from vaemsgan.evaluation import monitor as monitor_mod
from vaemsgan.evaluation.classifier import CLASSIFIER_PRESETS, ClassifierConfig


def test_every_judge_preset_can_be_the_monitor_s_classifier() -> None:
    assert Config().train.monitor_classifier == "quick"
    for name in ("quick", *CLASSIFIER_PRESETS):
        cfg = Config.from_dict({"train": {"monitor_classifier": name}})
        assert Config.from_yaml(cfg.to_yaml()).train.monitor_classifier == name
        want = monitor_mod.MONITOR_CLASSIFIER if name == "quick" else CLASSIFIER_PRESETS[name]
        assert monitor_mod.monitor_classifier(cfg) == want


@pytest.mark.parametrize("name", ["quick", "sar"])
def test_the_monitor_trains_the_configured_classifier(
    name: str, tmp_path: Path, tiny_config, tiny_images, monkeypatch
) -> None:
    seen: list[ClassifierConfig] = []
    real = monitor_mod.domain_extractor

    def recording(images, labels, names, cfg, **kw):
        seen.append(cfg)
        # The configured shape, trained for 2 steps: the test checks the choice, not the accuracy.
        return real(images, labels, names, replace(cfg, steps=2), cache_dir=tmp_path / "cache", **kw)

    monkeypatch.setattr(monitor_mod, "domain_extractor", recording)
    mon = monitor_mod.Monitor(tiny_config(train={"monitor_classifier": name}), tiny_images, tmp_path)
    mon.setup(lambda line: None)
    assert seen == [monitor_mod.MONITOR_CLASSIFIER if name == "quick" else CLASSIFIER_PRESETS["sar"]]
    assert mon.extractor.model is not None and mon.real_feats.shape == (len(mon.real), seen[0].feature_dim)


def test_a_run_judged_by_a_named_judge_is_monitored_in_its_features() -> None:
    from vaemsgan.experiments.context import ReproduceOptions
    from vaemsgan.experiments.registry import EXPERIMENTS, MSTAR_CURVE_RUNS, ExperimentSpec
    from vaemsgan.experiments.runner import plan_runs

    exp = ExperimentSpec("curves", "t", MSTAR_CURVE_RUNS, ("curve",), "")
    out = Path("unused")
    sar = plan_runs(exp, out, ReproduceOptions(classifier="sar"))
    assert {p.cfg.train.monitor_classifier for p in sar} == {"sar"}
    small = plan_runs(EXPERIMENTS["curves"], out, ReproduceOptions())
    assert {p.cfg.train.monitor_classifier for p in small} == {"quick"}
    # --set still has the last word.
    mine = plan_runs(
        exp, out, ReproduceOptions(classifier="sar", overrides={"train.monitor_classifier": "quick"})
    )
    assert {p.cfg.train.monitor_classifier for p in mine} == {"quick"}


def test_runs_trained_before_the_option_stay_valid() -> None:
    """The monitor's classifier is bookkeeping, not learning: a curve or gain run trained before the option
    existed (its config lacks it: `quick`) is continued and kept, not refused as another run."""
    from vaemsgan.experiments.runner import learning_config
    from vaemsgan.presets import build_config

    old = build_config("scarce").to_dict()
    del old["train"]["monitor_classifier"]
    new = build_config("scarce", {"train.monitor_classifier": "sar"}).to_dict()
    assert learning_config(old) == learning_config(new)
    assert learning_config(new) != learning_config(build_config("scarce", {"train.lr_g": 1e-4}).to_dict())
