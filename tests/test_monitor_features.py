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


def test_a_run_resumed_in_another_feature_space_is_judged_on_its_new_checks(
    tmp_path: Path, tiny_config, tiny_images
) -> None:
    """KIDs of two feature spaces differ by 10x and more (MSTAR: 1,961 against 27,953 for the same samples). A
    run logged in the quick space and continued in the `sar` one neither reads the old checks back (or they
    would look like a collapse) nor keeps the old best.pt value as the one to beat."""
    import json

    import torch

    def check(step: int, kid: float, **extra: float) -> dict:
        values = {"kid": kid, "coverage": 0.6, "diversity": 1.0, "diversity_min": 1.0, "near_copy": 0.0}
        return {"step": step, **{f"monitor/{k}": v for k, v in {**values, **extra}.items()}}

    run = tmp_path / "run"
    run.mkdir()
    old = [
        check(s, k) for s, k in ((100, 900.0), (200, 400.0), (300, 300.0), (400, 250.0))
    ]  # quick, untagged
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    torch.save({"monitor": {"kid": 250.0, "step": 400}}, run / "best.pt")  # saved before the tag existed

    def resumed(name: str) -> monitor_mod.Monitor:
        mon = monitor_mod.Monitor(tiny_config(train={"monitor_classifier": name}), tiny_images, run)
        mon.setup = lambda log: setattr(mon, "ready", True)  # type: ignore[method-assign]
        new_kid = {k[len("monitor/") :]: v for k, v in check(0, 5000.0).items() if k != "step"}
        mon.measure = lambda sample: new_kid  # type: ignore[method-assign]
        mon.plot = lambda path: None  # type: ignore[method-assign]
        return mon

    quick = resumed("quick")
    quick(lambda z, y: z, 500, lambda line: None)
    assert [r["step"] for r in quick.history] == [100, 200, 300, 400, 500]  # the same space: read back
    assert quick._previous_best() == 250.0  # and its best.pt value is the one to beat

    sar = resumed("sar")
    checks = [sar(lambda z, y: z, s, lambda line: None) for s in (500, 600, 700)]
    assert [r["step"] for r in sar.history] == [500, 600, 700]  # the quick checks are not its history
    assert sar._previous_best() is None and all(c.collapse is None for c in checks)
    assert checks[-1].record["monitor/space"] == monitor_mod.MONITOR_SPACES.index("sar")
    assert checks[-1].best is not None and checks[-1].best["space"] == checks[-1].record["monitor/space"]


def test_every_monitor_classifier_has_a_feature_space_code() -> None:
    from vaemsgan.config import TrainConfig

    choices = TrainConfig.__dataclass_fields__["monitor_classifier"].metadata["choices"]
    assert tuple(choices) == monitor_mod.MONITOR_SPACES
    for name in monitor_mod.MONITOR_SPACES:
        cfg = Config.from_dict({"train": {"monitor_classifier": name}})
        assert monitor_mod.monitor_space(cfg) == monitor_mod.MONITOR_SPACES.index(name)


def test_the_monitor_sees_samples_that_repeat_within_a_class(
    tmp_path: Path, tiny_config, tiny_images, monkeypatch
) -> None:
    """A generator that repeats one image per class keeps a fair mean pairwise feature distance on many data
    sets (the CIFAR-10 run whose grids repeat: 0.69 of the data's) but not its twin share: 1.0 against ~0 for
    distinct real images; the warning comes after the warm-up and again only at a new high."""
    import torch

    real = monitor_mod.domain_extractor
    monkeypatch.setattr(
        monitor_mod,
        "domain_extractor",
        lambda images, labels, names, cfg, **kw: real(
            images, labels, names, replace(cfg, steps=2), cache_dir=tmp_path / "cache", **kw
        ),
    )
    mon = monitor_mod.Monitor(tiny_config(), tiny_images, tmp_path, per_class=12)
    mon.setup(lambda line: None)
    by_class = [tiny_images.images[tiny_images.labels == c] for c in range(2)]

    def distinct(
        z: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:  # the real images the twin refs did not use
        return torch.cat([by_class[c][-12:] for c in range(2)])

    def repeating(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([by_class[c][:1].expand(12, -1, -1, -1) for c in range(2)])

    assert mon.measure(distinct)["repeats"] <= 1 / 12
    assert mon.measure(repeating)["repeats"] == 1.0
    check = {"kid": 1.0, "coverage": 0.6, "diversity": 1.0, "diversity_min": 1.0, "near_copy": 0.0}
    warm = [{"step": 100 * (i + 1), **check, "repeats": 1.0} for i in range(mon.warmup_checks - 1)]
    mon.history = warm[:]
    assert not any("twin" in w for w in mon.warnings())  # still the warm-up
    # The warm-up's blobs repeating (1.0) do not silence a later, lower high.
    mon.history = [*warm, {"step": 900, **check, "repeats": 0.5}]
    assert any("50% of the samples have a near-twin" in w for w in mon.warnings())
    mon.history.append({"step": 1000, **check, "repeats": 0.5})
    assert not any("twin" in w for w in mon.warnings())  # said once, not at every check
    mon.history.append({"step": 1100, **check})  # a check logged before the measure existed
    assert not any("twin" in w for w in mon.warnings())


def test_near_copy_shares_of_another_pixel_distance_are_not_compared(
    tmp_path: Path, tiny_config, tiny_images
) -> None:
    """Checks logged before the near-copy share was contrast-normalised (no `monitor/pixels`) measured in plain
    grey levels, where bland samples scored up to 15%: read back as nan, they neither set the first share a
    rise is measured from nor silence a warning."""
    import json
    import math

    def check(step: int, near_copy: float, **extra: float) -> dict:
        values = {
            "kid": 300.0,
            "coverage": 0.6,
            "diversity": 1.0,
            "diversity_min": 1.0,
            "near_copy": near_copy,
        }
        return {"step": step, **{f"monitor/{k}": v for k, v in {**values, **extra}.items()}}

    run = tmp_path / "run"
    run.mkdir()
    old = [check(s, 0.15, space=0.0) for s in (100, 200, 300)]  # plain grey levels, untagged
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in old))
    mon = monitor_mod.Monitor(tiny_config(train={"monitor_classifier": "quick"}), tiny_images, run)
    mon.setup = lambda log: setattr(mon, "ready", True)  # type: ignore[method-assign]
    mon.plot = lambda path: None  # type: ignore[method-assign]
    lines: list[str] = []
    for step, share in ((400, 0.0), (500, 0.12)):
        new = {k[len("monitor/") :]: v for k, v in check(step, share).items() if k != "step"}
        mon.measure = lambda sample, new=new: new  # type: ignore[method-assign]
        rec = mon(lambda z, y: z, step, lines.append).record
        assert rec["monitor/pixels"] == monitor_mod.PIXEL_DISTANCE_CODE
    assert [r["step"] for r in mon.history] == [100, 200, 300, 400, 500]  # the old checks still count
    assert all(math.isnan(r["near_copy"]) for r in mon.history[:3])
    assert any("12% of the samples are near-copies" in line for line in lines)
