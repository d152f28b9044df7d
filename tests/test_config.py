"""Config building: single keys checked at once, the rules between keys once at the end (issue 13)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from vaemsgan.cli.main import build_parser
from vaemsgan.cli.train_cmd import resolve_train_config
from vaemsgan.config import Config, apply_overrides, validate
from vaemsgan.errors import ConfigError
from vaemsgan.models import build_networks
from vaemsgan.presets import PRESETS, build_config


def _train_config(*argv: str) -> Config:
    args = build_parser().parse_args(["train", "--out", "unused", *argv])
    return resolve_train_config(args)


@pytest.mark.parametrize(
    "argv",
    [
        ("--adversarial", "none", "--set", "loss.feature_recon_weight=0"),
        ("--set", "loss.feature_recon_weight=0", "--adversarial", "none"),
        ("--set", "loss.adversarial=none", "--set", "loss.feature_recon_weight=0"),
        ("--set", "loss.feature_recon_weight=0", "--set", "loss.adversarial=none"),
    ],
)
def test_cross_field_rules_do_not_depend_on_option_order(argv: tuple[str, ...]) -> None:
    cfg = _train_config(*argv)
    assert cfg.loss.adversarial == "none"
    assert cfg.loss.feature_recon_weight == 0.0


def test_cross_field_rule_still_enforced_at_the_end(
    run_cli: Callable[..., int], tmp_path: Path, capsys
) -> None:
    rc = run_cli("train", "--data", "fashion-mnist-mini", "--out", tmp_path / "run", "--adversarial", "none")
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "loss.feature_recon_weight" in err and "adversarial" in err
    assert not (tmp_path / "run").exists()


def test_config_file_and_flags_combine_in_any_split(tmp_path: Path) -> None:
    # The file alone breaks a rule that a flag then repairs: only the combination is judged.
    f = tmp_path / "c.yaml"
    f.write_text("loss:\n  adversarial: none\n")
    cfg = _train_config("--config", str(f), "--set", "loss.feature_recon_weight=0")
    assert (cfg.loss.adversarial, cfg.loss.feature_recon_weight) == ("none", 0.0)
    with pytest.raises(ConfigError, match="feature_recon_weight"):
        _train_config("--config", str(f))


def test_single_keys_are_still_checked_immediately() -> None:
    cfg = Config()
    for bad, needle in [
        ({"data.resolution": 24}, "power of two"),
        ({"data.resolution": 8}, "out of range"),
        ({"model.d_kernels": [4]}, "allowed kernel sizes"),
        ({"model.d_kernels": []}, "at least one"),
        ({"train.snapshot_minutes": "0"}, "snapshot_minutes"),
        ({"loss.adversarial": "gan"}, "allowed values"),
        ({"train.steps": "many"}, "integer"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            apply_overrides(cfg, bad)


def test_apply_overrides_defers_rules_between_keys_to_validate() -> None:
    cfg = apply_overrides(Config(), {"loss.adversarial": "none"})  # feature_recon_weight is still 1
    with pytest.raises(ConfigError, match="feature_recon_weight"):
        validate(cfg)
    with pytest.raises(ConfigError, match="feature_recon_weight"):
        build_networks(cfg, 2)  # the safety net for configs finished with apply_overrides
    apply_overrides(cfg, {"loss.feature_recon_weight": 0})
    assert validate(cfg) is cfg


def test_validate_rechecks_directly_assigned_values() -> None:
    cfg = Config()
    cfg.data.resolution = 48
    with pytest.raises(ConfigError, match="power of two"):
        validate(cfg)
    cfg = Config()
    cfg.train.steps = "7"  # type: ignore[assignment]
    assert validate(cfg).train.steps == 7


def test_build_config_validates_unless_told_not_to() -> None:
    with pytest.raises(ConfigError, match="feature_recon_weight"):
        build_config("default", {"loss.adversarial": "none"})
    cfg = build_config("default", {"loss.adversarial": "none"}, check=False)
    assert cfg.loss.adversarial == "none"


def test_a_bare_config_holds_what_its_preset_label_says() -> None:
    bare = Config()
    assert bare.preset == "base" and "base" in PRESETS
    assert build_config(bare.preset) == bare
    assert Config.from_dict({}) == bare
    # 'default' is not the dataclass defaults, so a bare Config must not claim to be it.
    assert build_config("default") != Config(preset="default")
    for name in PRESETS:
        assert build_config(name).preset == name
