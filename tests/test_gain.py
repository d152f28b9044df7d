"""Augmentation gain (issue 12): the classical policy, the arms, the paired differences, the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from vaemsgan.evaluation.classifier import (
    ClassifierConfig,
    affine_batch,
    augment_policy,
    classical_batch,
    train_classifier,
)
from vaemsgan.evaluation.crossval import LabelledImages
from vaemsgan.evaluation.gain import (
    Arm,
    GainOptions,
    best_verdict,
    paired_difference,
    run_gain_study,
)
from vaemsgan.evaluation.gain_arms import synthetic_arms

# ---------------------------------------------------------------- the affine augmentation


def test_affine_identity_returns_the_input_exactly() -> None:
    x = torch.rand(5, 3, 12, 9) * 2 - 1
    y = affine_batch(x, torch.zeros(5), torch.ones(5), torch.zeros(5, 2), fill=-1.0)
    assert torch.equal(y, x)
    # Mixed batch: the identity rows are untouched, the others are not.
    y = affine_batch(x, torch.tensor([0.0, 3.0, 0.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 1.1, 1.0, 1.0]))
    assert (
        torch.equal(y[[0, 3, 4]], x[[0, 3, 4]])
        and not torch.equal(y[1], x[1])
        and not torch.equal(y[2], x[2])
    )


def test_affine_integer_translation_is_a_shift() -> None:
    x = torch.rand(2, 1, 10, 7) * 2 - 1
    y = affine_batch(x, torch.zeros(2), torch.ones(2), torch.tensor([[3.0, 2.0], [-1.0, 0.0]]), fill=-1.0)
    want = torch.full_like(x, -1.0)
    want[0, :, 2:, 3:] = x[0, :, :-2, :-3]  # 3 right, 2 down
    want[1, :, :, :-1] = x[1, :, :, 1:]  # 1 left
    assert torch.allclose(y, want, atol=1e-5)


def test_affine_quarter_turn_is_counter_clockwise() -> None:
    x = torch.rand(1, 1, 8, 8)
    y = affine_batch(x, torch.tensor([90.0]), torch.ones(1))
    assert torch.allclose(y, torch.rot90(x, 1, (2, 3)), atol=1e-5)


def test_classical_policy_is_seeded_and_small() -> None:
    x = torch.rand(16, 1, 16, 16) * 2 - 1
    a = classical_batch(x, 2, True, torch.Generator().manual_seed(3))
    b = classical_batch(x, 2, True, torch.Generator().manual_seed(3))
    c = classical_batch(x, 2, True, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= -1 - 1e-5 and a.max() <= 1 + 1e-5
    cfg = ClassifierConfig(flip=False)
    pol = augment_policy("classical", cfg)
    assert pol["flip"] is False and pol["rotate_degrees"] > 0 and pol["scale"] == [0.9, 1.1]
    assert augment_policy(False, cfg)["name"] == "none" and augment_policy("none", cfg)["crop_pad"] == 0


def test_train_classifier_takes_a_policy_name() -> None:
    imgs = torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8)
    labels = torch.arange(12) % 2
    cfg = ClassifierConfig(steps=3, batch_size=4, width=4, max_width=4, depth=2, feature_dim=8)
    m1 = train_classifier(imgs, labels, 2, cfg, seed=1, augment="classical")
    m2 = train_classifier(imgs, labels, 2, cfg, seed=1, augment="classical")
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))
    from vaemsgan.errors import ConfigError

    with pytest.raises(ConfigError, match="augmentation policy 'fancy'"):
        train_classifier(imgs, labels, 2, cfg, augment="fancy")


# ---------------------------------------------------------------- statistics


def test_paired_difference_known_numbers() -> None:
    # Differences 1, 2, 3 points: mean 2, sd 1, t(0.975, 2) = 4.302653 -> half-width 4.302653 / sqrt(3).
    d = paired_difference([0.72, 0.74, 0.76], [0.71, 0.72, 0.73])
    half = 4.302652729911275 / 3**0.5
    assert d["n"] == 3 and d["values"] == pytest.approx([1.0, 2.0, 3.0])
    assert d["mean"] == pytest.approx(2.0)
    assert d["low"] == pytest.approx(2.0 - half) and d["high"] == pytest.approx(2.0 + half)
    # A seed without a value on one side drops out of the pairing.
    assert paired_difference([0.5, float("nan")], [0.4, 0.4])["n"] == 1


def test_best_verdict_names_the_arm_and_the_sign_of_its_interval() -> None:
    def arm(key: str, mean: float, low: float, high: float) -> dict:
        d = {"mean": mean, "low": low, "high": high, "n": 5}
        return {"arm": key, "label": f"real + {key}", "ratios": [{"ratio": 1.0, "difference_points": d}]}

    best, s = best_verdict([arm("prior", 0.5, -1, 2), arm("curated", 2.0, 0.5, 3.5)], "real + classical")
    assert best is not None and best["arm"] == "curated"
    assert s.startswith("Best arm: real + curated at 1x, +2.0 points over real + classical")
    assert "above zero" in s
    _, s = best_verdict([arm("prior", 0.5, -1, 2)], "real + classical")
    assert "includes zero" in s
    assert best_verdict([{"arm": "x", "label": "x", "skipped": "why"}], "b")[0] is None


def _toy(n_per: int, seed: int) -> LabelledImages:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(2).repeat_interleave(n_per)
    base = torch.where(labels[:, None, None, None] == 0, 60, 190)
    noise = torch.randint(-40, 40, (2 * n_per, 1, 8, 8), generator=g)
    return LabelledImages((base + noise).clamp(0, 255).to(torch.uint8), labels)


SMALL = ClassifierConfig(steps=4, batch_size=8, width=4, max_width=4, depth=2, feature_dim=8)


def test_study_differences_are_against_the_classical_baseline() -> None:
    real, test, pool = _toy(6, 0), _toy(5, 1), _toy(12, 2)
    arms = [Arm("prior", "real + prior samples", pool), Arm("none", "real + nothing", skipped="because")]
    g = run_gain_study(
        real, test, arms, ["a", "b"], GainOptions(seeds=2, ratios=(0.5, 3.0), classifier=SMALL)
    )
    base = g["baseline"]["accuracy"]["values"]
    assert g["policy"]["name"] == "classical" and g["reference_policy"]["name"] == "none"
    prior = g["arms"][0]
    assert [r["ratio"] for r in prior["ratios"]] == [0.5, 3.0]
    r = prior["ratios"][0]
    assert r["difference_points"] == paired_difference(r["accuracy"]["values"], base)
    assert set(r["per_class_difference_points"]) == {"a", "b"}
    assert "pool has 12" in prior["ratios"][1]["skipped"]  # 3x needs 18 per class
    assert g["arms"][1]["skipped"] == "because"
    assert g["reference"]["difference_points"] == paired_difference(
        g["reference"]["accuracy"]["values"], base
    )
    assert any("skipped: because" in line for line in g["verdict_lines"])


# ---------------------------------------------------------------- arms from a model


def test_arms_without_a_model_or_an_encoder_are_skipped_with_the_reason(tiny_run: Path) -> None:
    from vaemsgan.generation import load_model

    model = load_model(tiny_run)
    names = list(model.class_names)
    real = LabelledImages(torch.randint(0, 256, (6, 1, 16, 16), dtype=torch.uint8), torch.arange(6) % 3)
    opts = GainOptions(seeds=1, ratios=(1.0,), temperatures=(0.5, 1.0))
    arms = synthetic_arms(real, names, real, dataclasses.replace(model, encoder=None), opts, scorer=None)
    by = {a.key: a for a in arms}
    assert set(by) == {"prior", "curated", "variations-T0.5", "variations-T1"}
    for k in ("variations-T0.5", "variations-T1"):
        assert by[k].pool is None and "no encoder" in (by[k].skipped or "")
    arms = synthetic_arms(real, names, real, None, opts)
    assert all(a.pool is None and "needs a model" in (a.skipped or "") for a in arms if a.key != "prior")
    # With the encoder: ceil(max ratio) variations of every real image, labels kept.
    arms = synthetic_arms(real, names, real, model, dataclasses.replace(opts, ratios=(0.5, 2.0)), scorer=None)
    pool = next(a for a in arms if a.key == "variations-T1").pool
    assert pool is not None and len(pool) == 12 and torch.equal(pool.labels, real.labels.repeat_interleave(2))


def test_evaluate_takes_a_named_classifier_and_the_gain_policy() -> None:
    from vaemsgan.cli.evaluate_cmd import options_from_args
    from vaemsgan.cli.main import build_parser
    from vaemsgan.evaluation.classifier import CLASSIFIER_PRESETS

    def opts(*extra: str):
        argv = ["evaluate", "--real", "r", "--generated", "g", "--out", "o", *extra]
        return options_from_args(build_parser().parse_args(argv))

    plain = opts()
    assert plain.classifier == CLASSIFIER_PRESETS["small"] and plain.domain_steps == 600
    assert plain.gain_policy == "classical" and plain.gain_options().policy == "classical"
    assert opts("--classifier", "small") == plain
    cifar = CLASSIFIER_PRESETS["cifar"]
    o = opts("--classifier", "cifar")
    # The named judge as its preset trains it, the feature network too; colour photographs' baseline is
    # crops + flips, and the study's classifiers get both.
    assert o.classifier == cifar and o.domain_steps == cifar.steps == 3000
    assert o.gain_options().policy == "standard" and o.gain_options().classifier == cifar
    o = opts(
        "--classifier", "cifar", "--classifier-steps", "50", "--domain-steps", "70", "--gain-policy", "none"
    )
    assert (o.classifier.steps, o.classifier.width, o.domain_steps) == (50, cifar.width, 70)
    assert o.gain_options().policy == "none"
    q = opts("--classifier", "cifar", "--quick")  # the small budget caps the named judge's steps
    assert (q.classifier.steps, q.classifier.crop_pad, q.domain_steps) == (200, cifar.crop_pad, 400)
    assert opts("--classifier", "sar").gain_policy == "classical"


def test_evaluate_gain_cli_writes_every_arm_and_ratio(tiny_run: Path, tmp_path: Path, run_cli) -> None:
    rep = tmp_path / "rep"
    argv = ["evaluate", "--real", "fashion-mnist-mini", "--checkpoint", tiny_run, "--out", rep]
    argv += ["--augmentation-gain", "--gain-seeds", 2, "--classifier-steps", 4, "--domain-steps", 4]
    argv += ["--real-per-class", 6, "--cache-dir", tmp_path / "cache", "--no-progress", "--threads", 1]
    assert run_cli(*argv, "--gain-interpolation", "0.2,0.8") == 0
    m = json.loads((rep / "metrics.json").read_text())
    g = m["augmentation_gain"]
    assert g["ratios"] == [0.5, 1.0, 2.0] and g["seeds"] == 2
    assert g["baseline"]["accuracy"]["n"] == 2 and g["reference"]["difference_points"]["n"] == 2
    arms = {a["arm"]: a for a in g["arms"]}
    assert set(arms) == {"prior", "curated", "variations-T0.5", "variations-T1", "interpolations-n3-0.2-0.8"}
    for a in arms.values():
        assert [r["ratio"] for r in a["ratios"]] == [0.5, 1.0, 2.0]
        for r in a["ratios"]:
            d = r["difference_points"]
            assert d["n"] == 2 and d["low"] <= d["mean"] <= d["high"]
            assert set(r["per_class_difference_points"]) == set(m["classes"])
    assert g["best"]["arm"] in arms and g["verdict"].startswith("Best arm: ")
    assert g["verdict"] in m["verdict"]["overall"]
    assert (rep / "augmentation_gain.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (rep / "report.html").read_text()
    assert "<h2>Augmentation gain</h2>" in html and "anchored variations (T=0.5)" in html


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--gain-seeds", "0"], "argument --gain-seeds: '0' is not an integer from 1 to 1000"),
        (["--gain-ratios", "0,1"], "argument --gain-ratios: '0' in '0,1' is not a number > 0"),
        (["--gain-temperatures", "0.5,-1"], "argument --gain-temperatures: '-1' in '0.5,-1' is not a number"),
        (["--gain-temperatures", "nan"], "argument --gain-temperatures: 'nan' in 'nan' is not a number"),
        (
            ["--gain-interpolation", "0.8,0.2"],
            "argument --gain-interpolation: must be LO,HI with 0 <= LO <= HI <= 1",
        ),
        (
            ["--gain-interpolation", "a,b"],
            "argument --gain-interpolation: must be LO,HI (two numbers from 0 to 1",
        ),
    ],
)
def test_gain_options_are_range_checked(extra: list[str], needle: str, capsys, tmp_path: Path) -> None:
    from vaemsgan.cli.main import main

    argv = ["evaluate", "--real", "x", "--generated", str(tmp_path), "--out", str(tmp_path / "o")]
    rc = main([*argv, "--augmentation-gain", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0]


def test_every_arm_but_the_reference_trains_with_the_classical_policy(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from vaemsgan.evaluation import gain

    calls: list[tuple[int, str, int]] = []
    real_fit = gain.train_classifier

    def spy(images, labels, n_cls, cfg, *, seed, augment):  # noqa: ANN001, ANN202
        calls.append((len(images), augment, seed))
        return real_fit(images, labels, n_cls, cfg, seed=seed, augment=augment)

    monkeypatch.setattr(gain, "train_classifier", spy)
    real, test, pool = _toy(4, 0), _toy(2, 1), _toy(8, 2)
    arms = [Arm("prior", "real + prior", pool), Arm("var", "real + var", pool)]
    run_gain_study(real, test, arms, ["a", "b"], GainOptions(seeds=2, ratios=(1.0, 2.0), classifier=SMALL))
    assert len(calls) == 2 * (2 + 2 * 2)
    assert [c for c in calls if c[1] == "none"] == [(8, "none", 0), (8, "none", 1)]  # the reference only
    assert sorted({n for n, p, _ in calls if p == "classical"}) == [8, 16, 24]  # baseline, 1x, 2x
    # A memo of the real-only arms (a study of several models on the same real images): trained once.
    memo: dict = {}
    calls.clear()
    first = run_gain_study(
        real, test, arms, ["a", "b"], GainOptions(seeds=2, classifier=SMALL), real_memo=memo
    )
    assert sorted(memo) == ["baseline#0", "baseline#1", "reference#0", "reference#1"]
    n_first = len(calls)
    again = run_gain_study(
        real, test, arms, ["a", "b"], GainOptions(seeds=2, classifier=SMALL), real_memo=memo
    )
    assert len(calls) == 2 * n_first - 4 and all(c[0] > 8 for c in calls[n_first:])
    assert again["baseline"]["accuracy"] == first["baseline"]["accuracy"]
    # Persisted (reproduce gain: one file per real-set size), the memo serves another process's study too.
    from vaemsgan.experiments.gain_study import SharedFits

    path, key = tmp_path / "gain.real-fits.json", {"real_images": "abc"}
    opts = GainOptions(seeds=2, classifier=SMALL)
    run_gain_study(real, test, arms, ["a", "b"], opts, real_memo=SharedFits(path, key))
    calls.clear()
    other = run_gain_study(real, test, arms, ["a", "b"], opts, real_memo=SharedFits(path, key))
    assert len(calls) == n_first - 4 and other["baseline"]["accuracy"] == first["baseline"]["accuracy"]


def test_shared_fits_lose_no_worker_s_results(tmp_path: Path) -> None:
    """Two workers (GAN seeds of one size) open the shared file at the same time, both empty: each finds what
    the other wrote since, and neither write drops the other's results."""
    from vaemsgan.experiments.gain_study import SharedFits

    path, key = tmp_path / "gain.real-fits.json", {"real_images": "abc"}
    a, b = SharedFits(path, key), SharedFits(path, key)
    a["baseline#0"] = [0.9, [0.8, 1.0]]
    b["reference#0"] = [0.7, [0.6, 0.8]]  # b's dict never held baseline#0: a plain dump would drop it
    assert "baseline#0" in b and b["baseline#0"] == [0.9, [0.8, 1.0]]
    assert "reference#0" in a
    on_disk = json.loads(path.read_text())
    assert sorted(on_disk["fits"]) == ["baseline#0", "reference#0"] and on_disk["eval_key"] == key
    # Other real images or judge settings: nothing is shared.
    assert "baseline#0" not in SharedFits(path, {"real_images": "other"})


def test_an_interrupted_study_resumes_from_its_journal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Every classifier's result goes to the journal as it comes (FitJournal writes it to disk); a study
    stopped part-way and started again trains only what the journal lacks and gives the same result."""
    from vaemsgan.evaluation import gain
    from vaemsgan.experiments.gain_study import FitJournal

    real, test, pool = _toy(4, 0), _toy(2, 1), _toy(8, 2)
    arms = [Arm("prior", "real + prior", pool), Arm("var", "real + var", pool)]
    opts = GainOptions(seeds=2, ratios=(1.0, 2.0), classifier=SMALL)
    whole = run_gain_study(real, test, arms, ["a", "b"], opts)
    n_fits = 2 * (2 + 2 * 2)

    calls: list[int] = []
    real_fit = gain.train_classifier

    def stops_after_five(images, labels, n_cls, cfg, *, seed, augment):  # noqa: ANN001, ANN202
        if len(calls) == 5:
            raise KeyboardInterrupt  # the session ends
        calls.append(seed)
        return real_fit(images, labels, n_cls, cfg, seed=seed, augment=augment)

    monkeypatch.setattr(gain, "train_classifier", stops_after_five)
    key = {"checkpoint_sha256": "abc"}
    path = tmp_path / "gain.fits.json"
    with pytest.raises(KeyboardInterrupt):
        run_gain_study(real, test, arms, ["a", "b"], opts, journal=FitJournal(path, key))
    assert len(json.loads(path.read_text())["fits"]) == 5
    calls.clear()
    monkeypatch.setattr(gain, "train_classifier", lambda *a, **k: (calls.append(0), real_fit(*a, **k))[1])
    resumed = run_gain_study(real, test, arms, ["a", "b"], opts, journal=FitJournal(path, key))
    assert len(calls) == n_fits - 5
    assert resumed["baseline"]["accuracy"] == whole["baseline"]["accuracy"]
    assert [a.get("ratios") for a in resumed["arms"]] == [a.get("ratios") for a in whole["arms"]]
    # Another key (another checkpoint or settings) or --force: nothing is kept.
    assert len(FitJournal(path, {"checkpoint_sha256": "other"})) == 0
    assert len(FitJournal(path, key, fresh=True)) == 0 and len(FitJournal(path, key)) == n_fits


def test_the_interpolation_arm_mixes_nearest_neighbours(tiny_run: Path) -> None:
    """With `interpolation`, one more arm: ceil(max ratio) interpolations of every real image, labels kept,
    its key naming its parameters; skipped with the reason without an encoder; bad ranges rejected."""
    from vaemsgan.errors import ConfigError
    from vaemsgan.generation import load_model

    model = load_model(tiny_run)
    names = list(model.class_names)
    real = LabelledImages(torch.randint(0, 256, (6, 1, 16, 16), dtype=torch.uint8), torch.arange(6) % 3)
    opts = GainOptions(seeds=1, ratios=(0.5, 2.0), temperatures=(1.0,), interpolation=(0.25, 0.75))
    arms = {a.key: a for a in synthetic_arms(real, names, real, model, opts, scorer=None)}
    arm = arms["interpolations-n3-0.25-0.75"]
    assert arm.pool is not None and len(arm.pool) == 12
    assert torch.equal(arm.pool.labels, real.labels.repeat_interleave(2))
    assert arm.info == {"mix": [0.25, 0.75], "neighbours": 3, "variations_per_image": 2}
    assert not torch.equal(arm.pool.images, arms["variations-T1"].pool.images)  # type: ignore[union-attr]
    bare = dataclasses.replace(model, encoder=None)
    arms = {a.key: a for a in synthetic_arms(real, names, real, bare, opts, scorer=None)}
    assert "no encoder" in (arms["interpolations-n3-0.25-0.75"].skipped or "")
    assert "interpolations-n3-0.25-0.75" not in {a.key for a in synthetic_arms(real, names, real, model,
        dataclasses.replace(opts, interpolation=None), scorer=None)}  # fmt: skip
    with pytest.raises(ConfigError, match="--gain-interpolation"):
        dataclasses.replace(opts, interpolation=(0.8, 0.2)).validate()


def test_a_journal_serves_evaluations_that_add_arms_but_not_other_pools(tmp_path: Path) -> None:
    """A classifier's journalled result depends on the checkpoint, the classifier settings and the largest
    ratio (it sizes the pools), not on the other arms, temperatures, seeds or smaller ratios measured beside
    it; an evaluation key written before the interpolation option existed is the same journal."""
    from vaemsgan.experiments.gain_study import FitJournal, fits_key

    old = {"v": 1, "checkpoint_sha256": "abc", "eval_seeds": 3, "classifier_steps": 1500,
           "ratios": [0.5, 1.0, 2.0], "temperatures": [1.0], "recon_per_class": 10}  # fmt: skip
    path = tmp_path / "gain.fits.json"
    FitJournal(path, old)["prior/1#0"] = [0.9, [0.8, 1.0]]
    for same in (
        {**old, "interpolation": [0.25, 0.75]},
        {**old, "temperatures": [0.5, 1.0], "eval_seeds": 5},
        {**old, "ratios": [1.0, 2.0]},
    ):
        assert FitJournal(path, same) == {"prior/1#0": [0.9, [0.8, 1.0]]}
    for other in ({**old, "ratios": [0.5, 1.0]}, {**old, "checkpoint_sha256": "def"},
                  {**old, "classifier_steps": 300}, {**old, "domain_steps": 60}, {**old, "policy": "none"},
                  {**old, "classifier": "sar"}):  # fmt: skip
        assert len(FitJournal(path, other)) == 0
    assert fits_key({**old, "interpolation": [0.1, 0.2]}) == fits_key(old)


# ---------------------------------------------------------------- the weak-classes arm


def test_weak_class_shares_known_answers() -> None:
    from vaemsgan.evaluation.gain import class_counts
    from vaemsgan.evaluation.gain_arms import weakness_weights

    w = weakness_weights([0.2, 0.1, 0.0, 0.1])  # mean 0.1: the error-free class counts as 0.025
    assert w == pytest.approx([0.2 / 0.425, 0.1 / 0.425, 0.025 / 0.425, 0.1 / 0.425])
    assert weakness_weights([0.0, 0.0]) == [0.5, 0.5]
    assert class_counts(2.0, [10, 20], None) == [20, 40]
    assert class_counts(2.0, [10, 20], [0.25, 0.75]) == [15, 45]  # 2 x 30 images in all, shared 1:3
    assert class_counts(1.0, [3, 3, 3], [1 / 3] * 3) == [3, 3, 3]
    assert class_counts(1.0, [5, 5], [0.55, 0.45]) == [6, 4]  # 5.5 and 4.5: the larger remainder first
    assert class_counts(1.0, [6, 5], [0.4, 0.3]) == [
        6,
        5,
    ]  # 6.29 and 4.71: the 11th to the larger remainder


def test_class_errors_find_the_classes_a_classifier_confuses() -> None:
    """Class 0 is bright, classes 1 and 2 are the same dark noise: the cross-validated errors are those of
    1 and 2, never 0; the weights then go to 1 and 2."""
    from vaemsgan.evaluation.gain_arms import class_errors, weakness_weights

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(12)
    base = torch.where(labels[:, None, None, None] == 0, 220, 40)
    images = (base + torch.randint(0, 30, (36, 1, 8, 8), generator=g)).to(torch.uint8)
    cfg = dataclasses.replace(SMALL, steps=200, width=8, max_width=8)
    err = class_errors(LabelledImages(images, labels), 3, cfg, "none")
    assert err[0] == 0.0 and err[1] + err[2] >= 0.5  # two indistinguishable classes: about half wrong each
    assert err == class_errors(LabelledImages(images, labels), 3, cfg, "none")  # seeded
    w = weakness_weights(err)
    assert w[0] < w[1] and w[0] < w[2]


def test_the_weak_classes_arm_adds_most_where_the_errors_are(tiny_run: Path) -> None:
    from vaemsgan.generation import load_model

    model = load_model(tiny_run)
    names = list(model.class_names)
    real = LabelledImages(torch.randint(0, 256, (9, 1, 16, 16), dtype=torch.uint8), torch.arange(9) % 3)
    opts = GainOptions(seeds=1, ratios=(1.0, 2.0), temperatures=(), weak_classes=True)

    def weak(errors=None, options=opts, source=model):  # noqa: ANN001, ANN202
        arms = synthetic_arms(real, names, real, source, options, errors=errors)
        return next((a for a in arms if a.key.startswith("weak-classes")), None)

    arm = weak(lambda: [0.5, 0.0, 0.3])
    assert arm is not None and arm.key.startswith("weak-classes-f2-")
    floor = 0.25 * 0.8 / 3  # a quarter of the mean error, for the class without one
    assert arm.weights == pytest.approx([e / (0.8 + floor) for e in (0.5, floor, 0.3)])
    assert arm.info["class_errors"] == dict(zip(names, [0.5, 0.0, 0.3]))
    # The pool holds the largest ratio's counts: 2 x 9 images shared out, sampled from the model's prior.
    counts = [len(arm.pool.of_class(c)) for c in range(3)]  # type: ignore[union-attr]
    assert sum(counts) == 18 and counts[0] > counts[2] > counts[1]
    other = weak(lambda: [0.3, 0.0, 0.5])
    assert other is not None and other.key != arm.key  # other shares, another arm in the journal
    assert weak(lambda: [0.5, 0.0, 0.3], dataclasses.replace(opts, weak_classes=False)) is None
    skipped = weak()
    assert skipped is not None and skipped.pool is None and "class errors" in (skipped.skipped or "")
    # A class that gets no image at any ratio (a small ratio, one class all the error) is an empty pool.
    lone = weak(lambda: [1.0, 0.0, 0.0], dataclasses.replace(opts, ratios=(0.25,)))
    assert lone is not None and [len(lone.pool.of_class(c)) for c in range(3)] == [2, 0, 0]  # type: ignore[union-attr]
    # Without a model (a folder of generated images): the prior images themselves, too few at large ratios.
    folder = weak(lambda: [0.5, 0.0, 0.3], source=None)
    assert folder is not None and folder.pool is real
    # In the study: its counts per class, not r x each class's own.
    test = LabelledImages(real.images, real.labels)
    g = run_gain_study(real, test, [arm, folder], names, dataclasses.replace(opts, classifier=SMALL))
    assert [r["n_generated"] for r in g["arms"][0]["ratios"]] == [9, 18]
    assert "the pool has 3" in g["arms"][1]["ratios"][0]["skipped"]
