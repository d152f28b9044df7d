"""`vaemsgan reproduce`: run specs of every experiment, one quick experiment end to end, resume, budgets.

Kept small on purpose (the whole file runs in well under a minute on 2 loaded cores): one experiment runs
for real (`classifier`: two runs, statistics and the cross-validation table) on 2 classes of the embedded
subset at 16 px with 3 training steps; every other experiment is checked through its run plans.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from vaemsgan.cli.main import main
from vaemsgan.config import apply_overrides
from vaemsgan.experiments import EXPERIMENTS, ReproduceOptions, expand, experiment_names, plan_runs
from vaemsgan.experiments.tables import table2
from vaemsgan.presets import PAPER_MODES, build_config

QUICK = [
    "--data",
    "fashion-mnist-mini",
    "--per-class",
    "10",
    "--resolution",
    "16",
    "--quick",
    "--threads",
    "1",
    "--no-progress",
    "--set",
    "data.classes=trouser,bag",
]


def _plans(name: str, tmp_path: Path) -> dict:
    opts = ReproduceOptions(data="fashion-mnist-mini", resolution=16)
    return {p.name: p for p in plan_runs(EXPERIMENTS[name], tmp_path, opts)}


def test_every_experiment_plans_valid_configs(tmp_path: Path) -> None:
    for name in experiment_names():
        for exp in expand(name):
            for plan in plan_runs(exp, tmp_path, ReproduceOptions(resolution=32, seeds=2)):
                assert plan.cfg.data.source == "fashion-mnist" and plan.cfg.data.resolution == 32
                assert plan.cfg.train.steps == 10**9  # the budget ends a run
    assert [e.name for e in expand("table2")] == ["table2", "table2-all"]
    with pytest.raises(Exception, match="unknown experiment"):
        expand("nope")


def test_kernel_and_pooling_runs_are_the_paper_modes(tmp_path: Path) -> None:
    plans = _plans("kernels", tmp_path)
    assert len(plans) == 7
    for m, (g, d) in PAPER_MODES.items():
        cfg = plans[f"paper-mode-{m}"].cfg
        assert (cfg.model.g_kernel, cfg.model.d_kernels) == (g, [d])
        assert cfg.model.pooling == "max" and cfg.model.d_norm == "batch"
    pools = {n: p.cfg.model.pooling for n, p in _plans("pooling", tmp_path).items()}
    assert pools == {"paper-pool-none": "none", "paper-pool-avg": "avg", "paper": "max"}


def test_ablation_removes_exactly_one_part(tmp_path: Path) -> None:
    plans = _plans("ablation", tmp_path)
    full = plans["paper"].cfg.to_dict()
    expected = {
        "ablate-multiscale": {("model", "scales"): 1},
        "ablate-multikernel": {("model", "d_kernels"): [5]},
        "ablate-norm": {("model", "d_norm"): "none"},
        "ablate-gp": {("loss", "gp_weight"): 0.0},
        "ablate-featrecon": {("loss", "feature_recon_weight"): 0.0, ("loss", "pixel_recon_weight"): 1.0},
        "ablate-encoder": {("model", "use_encoder"): False},
    }
    assert set(plans) == {"paper", *expected}
    for name, diff in expected.items():
        cfg = plans[name].cfg.to_dict()
        changed = {
            (s, k): cfg[s][k]
            for s in ("data", "model", "loss", "train")
            for k in cfg[s]
            if cfg[s][k] != full[s][k]
        }
        assert changed == diff, name


def test_baselines_table2_classifier_runs(tmp_path: Path) -> None:
    base = _plans("baselines", tmp_path)
    assert set(base) == {
        "dcgan",
        "cdcgan-wgan-gp",
        "vae",
        "vaegan",
        "paper",
        "default",
        "dcgan-classhead-b32",
    }
    for name, plan in base.items():
        ref = build_config(plan.spec.preset, {"data.source": "fashion-mnist-mini", "data.resolution": 16})
        apply_overrides(ref, plan.spec.overrides)  # the attribution run's own changes
        assert plan.cfg.model == ref.model and plan.cfg.loss == ref.loss, name
    assert base["dcgan-classhead-b32"].cfg.loss.class_weight == 1.0
    assert _plans("table2", tmp_path)["paper-3class"].cfg.data.classes == ["bag", "sneaker", "shirt"]
    assert _plans("table2-all", tmp_path)["paper"].cfg.data.classes is None
    assert set(_plans("classifier", tmp_path)) == {"paper", "default"}
    only = plan_runs(EXPERIMENTS["baselines"], tmp_path, ReproduceOptions(runs=["dcgan", "default"]))
    assert [p.name for p in only] == ["dcgan", "default"]
    one = plan_runs(EXPERIMENTS["baselines"], tmp_path, ReproduceOptions(seeds=2, runs=["default-seed1"]))
    assert [(p.name, p.cfg.train.seed) for p in one] == [("default-seed1", 1)]
    zero = plan_runs(EXPERIMENTS["baselines"], tmp_path, ReproduceOptions(seeds=2, runs=["default-seed0"]))
    assert [(p.name, p.cfg.train.seed) for p in zero] == [("default", 0)]  # seed 0's folder alone
    with pytest.raises(Exception, match="unknown run 'nope'"):
        plan_runs(EXPERIMENTS["baselines"], tmp_path, ReproduceOptions(runs=["nope"]))
    seeds = plan_runs(EXPERIMENTS["pooling"], tmp_path, ReproduceOptions(seeds=2))
    assert [p.name for p in seeds][:2] == ["paper-pool-none", "paper-pool-none-seed1"]
    assert [p.cfg.train.seed for p in seeds][:2] == [0, 1]


def test_quick_experiment_end_to_end_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    args = ["reproduce", "classifier", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), *QUICK]
    assert main(args) == 0
    for suffix in (".md", ".json", ".png"):
        assert (out / f"classifier{suffix}").is_file()
    table = json.loads((out / "classifier.json").read_text())
    assert [r["run"] for r in table["rows"]] == ["paper", "default"]
    row = table["rows"][0]
    assert row["steps"] == [3] and 0 <= row["TSTR"]["mean"] <= 1 and "mixed" in row
    assert set(row["stats"]) == {"mean", "std", "entropy", "laplacian_var"}
    md = (out / "classifier.md").read_text()
    assert "TSTR" in md and "500 real + 500 generated" in md and "Machine:" in md
    result = json.loads((out / "runs" / "paper" / "result.json").read_text())
    assert result["train"]["stopped_by"] == "steps" and result["train"]["wall_s"] > 0
    assert "Per class" not in md and "| trouser | generated |" in table2(result)
    # Second invocation: nothing is trained or evaluated again.
    files = sorted((out / "runs").glob("*/*.json")) + sorted((out / "runs").glob("*/eval/*.json"))
    ckpts = sorted((out / "runs").glob("*/train/checkpoints/*.pt"))
    before = {p: p.stat().st_mtime_ns for p in files + ckpts}
    capsys.readouterr()
    assert main(args) == 0
    assert "done earlier, kept" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in files + ckpts} == before
    # Interrupted after training and evaluation, before its markers: only the markers are written again.
    for f in ("DONE.json", "result.json"):
        (out / "runs" / "default" / f).unlink()
    assert main(args) == 0
    assert (out / "runs" / "default" / "DONE.json").is_file()
    trained = out / "runs" / "default" / "TRAINED.json"
    assert trained.stat().st_mtime_ns == before[trained]
    assert sorted((out / "runs" / "default" / "train" / "checkpoints").glob("*.pt")) == [
        p for p in ckpts if "default" in str(p)
    ]
    # Killed during training (a checkpoint, no TRAINED.json): on the CPU clock the run continues from its
    # newest checkpoint (here asked for 5 steps), its CPU time counted across the resume.
    for f in ("DONE.json", "result.json", "TRAINED.json"):
        (out / "runs" / "default" / f).unlink()
    capsys.readouterr()
    assert main([*args, "--steps", "5", "--runs", "default"]) == 0
    assert "default: resumed at step 3" in capsys.readouterr().err
    info = json.loads(trained.read_text())
    assert info["steps"] == 5 and info["cpu_s"] > 0


def test_reproduce_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["reproduce", "nope", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vaemsgan: error: unknown experiment 'nope'") and "\n" not in err
    assert main(["reproduce", "pooling", "--out", str(tmp_path / "o"), "--budget", "0"]) == 2
    assert "--budget" in capsys.readouterr().err
    assert main(["reproduce", "pooling", "--out", str(tmp_path / "o"), "--set", "model.nope=1"]) == 2
    assert "model.nope" in capsys.readouterr().err
    for bad in (
        ["--gain-per-class", "1"],
        ["--gain-ratios", "0"],
        ["--gain-temperatures", "-1"],
        ["--gain-interpolation", "0.9,0.1"],
        ["--gain-interpolation", "half"],
    ):
        assert main(["reproduce", "gain", "--out", str(tmp_path / "o"), *bad]) == 2
        err = capsys.readouterr().err.strip()
        assert bad[0] in err and "\n" not in err


def test_trainer_deadline_stops_at_a_step_boundary(tiny_config, tiny_images, tmp_path: Path) -> None:
    from vaemsgan.checkpoint import list_checkpoints
    from vaemsgan.training.trainer import Trainer

    ticks = iter(range(10**6))
    trainer = Trainer(tiny_config(), tiny_images, tmp_path / "run", progress=False, log=lambda m: None)
    state = trainer.train(100, deadline=3, clock=lambda: next(ticks))  # the clock passes 3 at step 3
    assert state.step == 3 and trainer.deadline_reached
    assert [p.name for p in list_checkpoints(tmp_path / "run")][-1] == "step-0000003.pt"
    assert (tmp_path / "run" / "samples" / "step-0000003.png").is_file()
    assert Trainer(tiny_config(), tiny_images, tmp_path / "r2", progress=False).train(2).step == 2


def test_budget_progress_bar_counts_steps_without_a_made_up_total(
    tiny_config, tiny_images, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A run under a time budget with no step cap (reproduce's runs) must not show a step total of 10**9
    and its ETA of years: the bar counts steps and says how much of the budget is left."""
    from vaemsgan.config import UNCAPPED_STEPS
    from vaemsgan.training.trainer import Trainer

    cfg = tiny_config()
    cfg.train.log_every = 1
    ticks = iter(range(0, 10**6, 30))  # 30 clock-seconds a call
    trainer = Trainer(cfg, tiny_images, tmp_path / "run", progress=True, log=lambda m: None)
    trainer.train(UNCAPPED_STEPS, deadline=240, clock=lambda: float(next(ticks)))
    err = capsys.readouterr().err
    assert "time budget ends" in err and "budget_left=" in err
    assert str(UNCAPPED_STEPS) not in err and "%|" not in err  # no step total, so no percentage
    left = [float(x.split("min")[0]) for x in err.split("budget_left=")[1:]]
    assert left[-1] < left[0] <= 4.0  # it counts down from the 4-minute budget

    # A real step cap keeps its total (and its ETA) under a budget.
    Trainer(cfg, tiny_images, tmp_path / "r2", progress=True).train(3, deadline=10**6, clock=lambda: 0.0)
    assert "3/3" in capsys.readouterr().err


def test_train_cli_budget_minutes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    base = [
        "train",
        "--data",
        "fashion-mnist-mini",
        "--per-class",
        "4",
        "--resolution",
        "16",
        "--no-progress",
    ]
    tiny = [
        "--g-width",
        "8",
        "--d-width",
        "8",
        "--latent-dim",
        "8",
        "--batch-size",
        "8",
        "--set",
        "model.e_width=8",
    ]
    assert main([*base, *tiny, "--out", str(tmp_path / "a"), "--budget-minutes", "0"]) == 2
    assert "argument --budget-minutes: '0' is not a number > 0" in capsys.readouterr().err
    assert main([*base, *tiny, "--out", str(tmp_path / "b"), "--budget-minutes", "0.0005"]) == 0
    assert "time budget reached" in capsys.readouterr().out
    assert (tmp_path / "b" / "samples.png").is_file()


def test_curves_quick_end_to_end_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`reproduce curves`: one run per model trained once to its last mark, every snapshot evaluated,
    the table, JSON and plot written; a second call trains and evaluates nothing."""
    out = tmp_path / "curves"
    args = ["reproduce", "curves", "--out", str(out), *QUICK, "--runs", "default,acgan"]
    assert main(args) == 0
    table = json.loads((out / "curves.json").read_text())
    rows = {(r["model"], r["minutes"]) for r in table["rows"]}
    assert rows == {(m, t) for m in ("default", "acgan") for t in (0.002, 0.004)}
    for r in table["rows"]:
        assert 0 <= r["tstr"]["mean"] <= 1 and r["fid"]["mean"] > 0 and r["steps"] >= 1
    assert 0 < table["trtr"]["mean"] <= 1
    for name in ("curves.md", "curves.png", "curves-grids.png"):
        assert (out / name).stat().st_size > 0
    evaluated = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/curve/*.json")}
    assert len(evaluated) == 4
    capsys.readouterr()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "train default" not in err and "reference: real-data" not in err
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/curve/*.json")} == evaluated
    # The screening experiment shares the `default` run (same name, same config): nothing is retrained.
    assert main(["reproduce", "screen", "--out", str(out), *QUICK, "--runs", "default"]) == 0
    assert "train default" not in capsys.readouterr().err
    assert "`default`: ours" in (out / "screen.md").read_text()
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/curve/*.json")} == evaluated


def test_curves_no_train_evaluates_what_is_there_and_table2_per_class(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`--no-train` (a second worker beside the trainer) trains nothing and evaluates the snapshots that
    exist; every evaluated snapshot carries the paper's Table-2 statistics per class and a real-vs-generated
    grid; an experiment that must train refuses `--no-train` in one line."""
    out = tmp_path / "curves"
    args = ["reproduce", "curves", "--out", str(out), *QUICK, "--runs", "default"]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:  # --threads 1 (QUICK) holds where nothing trains too: the judge and the evaluations use 1 thread
        assert main([*args, "--no-train"]) == 0  # nothing trained yet: nothing to evaluate, no crash
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    err = capsys.readouterr().err
    assert "train default" not in err and not list(out.glob("runs/*/curve/*.json"))
    assert not (out / "runs" / "default" / "train").exists()
    assert main(args) == 0
    capsys.readouterr()
    done = sorted(out.glob("runs/default/curve/*.json"))
    assert len(done) == 2
    for path in done:
        res = json.loads(path.read_text())
        stats = res["class_statistics"]
        assert set(stats) == {"generated", "real_train", "real_test"}
        for side in stats.values():
            assert set(side) == {"mean", "std", "entropy", "laplacian_var"}
            assert all(len(v) == len(res["class_names"]) for v in side.values())
        assert 0 <= stats["real_train"]["mean"][0] <= 255 and stats["real_train"]["entropy"][1] <= 8
        grid = path.with_name(path.stem + "-real-vs-generated.png")
        assert grid.stat().st_size > 0
    assert "Table-2 statistics per class" in (out / "curves.md").read_text()
    dom = json.loads((out / "curves.json").read_text())["domain_extractor"]
    assert 0 <= dom["test_accuracy"] <= 1  # the FID feature space, stated
    # The runs train on 10 images per class; the feature space is trained on every training image.
    from vaemsgan.data import load_images

    assert dom["train_images"] == len(load_images("fashion-mnist-mini", resolution=16)) > 10 * 10
    assert (
        f"its accuracy on the test split: {100 * dom['test_accuracy']:.1f}%"
        in (out / "curves.md").read_text()
    )
    row = json.loads((out / "curves.json").read_text())["rows"][0]
    assert set(row["table2_gap_pct"]) == {"mean", "std", "entropy", "laplacian_var"}
    done[0].unlink()
    assert main([*args, "--no-train"]) == 0
    err = capsys.readouterr().err
    assert "train default" not in err and done[0].is_file()  # evaluated again, nothing trained
    # The kept state holds trtr.json but no classifier weights: a new snapshot's TRTS trains them again.
    for f in (out / "reference").glob("*.pt"):
        f.unlink()
    done[0].unlink()
    assert main([*args, "--no-train"]) == 0
    err = capsys.readouterr().err
    assert "trtr-seed0.pt is missing; training the seed-0 real-data classifier again" in err
    assert done[0].is_file() and (out / "reference" / "trtr-seed0.pt").is_file()
    # What a later machine gets from the repository: the evaluated snapshots, TRAINED.json and trtr.json,
    # without checkpoints or classifier weights: the table is written again from them, nothing retrained.
    import shutil

    shutil.rmtree(out / "runs" / "default" / "train")
    for f in (out / "reference").glob("*.pt"):
        f.unlink()
    (out / "curves.md").unlink()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "train default" not in err and "reference: real-data" not in err
    assert len(json.loads((out / "curves.json").read_text())["rows"]) == 2
    assert main(["reproduce", "gain", "--out", str(tmp_path / "g"), *QUICK, "--no-train"]) == 2
    assert "--no-train: only learning curves evaluate without training" in capsys.readouterr().err


def test_table2_gaps_known_answer() -> None:
    from vaemsgan.experiments.curve_report import TABLE2_STATISTICS, table2_gaps
    from vaemsgan.experiments.curves import _class_means

    labels = torch.tensor([0, 0, 1])
    stats = {s: torch.tensor([100.0, 120.0, 50.0], dtype=torch.float64) for s in TABLE2_STATISTICS}
    grey = torch.zeros(3, 1, 4, 4, dtype=torch.uint8)
    means = _class_means(stats, grey, labels, 3)
    assert means["mean"][:2] == [110.0, 50.0] and math.isnan(means["mean"][2])
    assert sorted(means) == sorted(TABLE2_STATISTICS)  # grey: the paper's four
    gen = {s: [121.0, 45.0, 1.0] for s in TABLE2_STATISTICS}
    gaps = table2_gaps({"generated": gen, "real_train": means})
    assert gaps["std"][0] == pytest.approx(10.0) and gaps["std"][1] == pytest.approx(-10.0)
    assert math.isnan(gaps["std"][2])
    # Colour: each channel's mean level per class too (a red, a red and a blue image).
    rgb = torch.zeros(3, 3, 4, 4, dtype=torch.uint8)
    rgb[0, 0], rgb[1, 0], rgb[2, 2] = 200, 100, 60
    stats["entropy_joint"] = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    colour = _class_means(stats, rgb, labels, 2)
    assert colour["mean_red"] == [150.0, 0.0] and colour["mean_blue"] == [0.0, 60.0]
    assert colour["entropy_joint"] == [1.5, 3.0]
    gen = {**{s: [1.0, 1.0] for s in colour}, "mean_red": [165.0, 0.0]}
    assert table2_gaps({"generated": gen, "real_train": colour})["mean_red"][0] == pytest.approx(10.0)


def test_screen_runs_change_one_thing_each() -> None:
    """Every screening run is `default` with exactly its own overrides changed, and no two runs are equal."""
    from vaemsgan.experiments.curves import learning_config
    from vaemsgan.experiments.registry import SCREEN_RUNS
    from vaemsgan.presets import build_config

    base = learning_config(build_config("default").to_dict())
    seen = []
    for spec in SCREEN_RUNS:
        cfg = learning_config(spec.config().to_dict())
        changed = {
            f"{sec}.{k}"
            for sec, vals in cfg.items()
            if isinstance(vals, dict)
            for k in vals
            if vals[k] != base[sec][k]
        }
        assert changed == set(spec.overrides), spec.name
        assert cfg not in seen, spec.name
        seen.append(cfg)


def test_gain_quick_end_to_end_and_resume(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`reproduce gain --quick`: one `scarce` run per size and GAN seed, each evaluated (gain arms, the
    judge's view of the pools, reconstruction), pooled per size into gain.md/.json/.png; a second call
    trains and evaluates nothing."""
    out = tmp_path / "gain"
    args = ["reproduce", "gain", "--out", str(out), "--cache-dir", str(tmp_path / "cache"), *QUICK]
    assert main([*args, "--seeds", "2", "--gain-ratios", "0.5,1", "--gain-temperatures", "1"]) == 0
    table = json.loads((out / "gain.json").read_text())
    assert [s["per_class"] for s in table["sizes"]] == [6, 10]
    for s in table["sizes"]:
        assert s["gan_seeds"] == 2 and s["classifier_seeds"] == 1 and s["target_points"] == 2.0
        arms = {a["arm"]: a for a in s["arms"]}
        assert set(arms) == {"prior", "curated", "variations-T1"}
        for a in arms.values():
            assert [r["ratio"] for r in a["ratios"]] == [0.5, 1.0]
            d = a["ratios"][1]["difference_points"]
            assert d["n"] == 2 and len(d["values"]) == 2  # 2 GAN seeds x 1 classifier seed, pooled
            assert 0 <= s["judge"][a["arm"]]["mean_confidence"] <= 1
        assert s["baseline"]["accuracy"]["n"] == 1 and 0 <= s["baseline"]["accuracy"]["mean"] <= 1
        assert set(s["best"]["per_class_difference_points"]) == {"trouser", "bag"}
        assert isinstance(s["target_met"], bool)
        for rec in s["reconstruction"]:
            assert rec["images"] > 0 and -1 <= rec["ssim"] <= 1 and rec["psnr"] > 0  # barely trained
            assert 0 <= rec["classifier_accuracy"] <= 1 and 0 <= rec["classifier_accuracy_real"] <= 1
    md = (out / "gain.md").read_text()
    assert "## 6 real images per class" in md and "Reconstruction" in md and "Per-class recall" in md
    assert (out / "gain.png").stat().st_size > 0
    runs = sorted(p.name for p in (out / "n6" / "runs").iterdir())
    assert runs == ["scarce", "scarce-seed1"]
    kept = [*out.glob("n*/runs/*/*.json"), *out.glob("n*/runs/*/train/checkpoints/*.pt")]
    before = {p: p.stat().st_mtime_ns for p in kept}
    assert len([p for p in kept if p.name == "gain.json"]) == 4
    # The real-only classifiers (baseline, no augmentation), one file per size, shared by its GAN seeds.
    keys = []
    for n in (6, 10):
        shared = json.loads((out / f"n{n}" / "gain.real-fits.json").read_text())
        assert sorted(shared["fits"]) == ["baseline#0", "reference#0"]
        keys.append(shared["eval_key"]["real_images"])
    assert keys[0] != keys[1]  # another subset, other real images
    capsys.readouterr()
    assert main([*args, "--seeds", "2", "--gain-ratios", "1,0.5", "--gain-temperatures", "1"]) == 0
    err = capsys.readouterr().err
    assert "train scarce" not in err and "evaluate scarce" not in err and "evaluated earlier, kept" in err
    assert {p: p.stat().st_mtime_ns for p in kept} == before
    # Killed after its last checkpoint, before TRAINED.json: resumed, found at its budget, kept as it is.
    (out / "n6" / "runs" / "scarce" / "TRAINED.json").unlink()
    assert main([*args, "--seeds", "2", "--gain-ratios", "0.5,1", "--gain-temperatures", "1"]) == 0
    err = capsys.readouterr().err
    assert "scarce: resumed at step" in err and "train scarce" not in err and "evaluate scarce" not in err
    assert {p: p.stat().st_mtime_ns for p in kept if p.name != "TRAINED.json"} == {
        p: t for p, t in before.items() if p.name != "TRAINED.json"
    }
    # A marker written before a config key existed (here lr_gamma, at its default): still this run, kept.
    marker = out / "n6" / "runs" / "scarce" / "TRAINED.json"
    older = json.loads(marker.read_text())
    del older["learning_config"]["train"]["lr_gamma"]
    marker.write_text(json.dumps(older))
    assert main([*args, "--seeds", "2", "--gain-ratios", "0.5,1", "--gain-temperatures", "1"]) == 0
    err = capsys.readouterr().err
    assert "resumed at step" not in err and "train scarce" not in err and "evaluate scarce" not in err
    # The same GANs judged by classifiers without augmentation and with other steps: written beside the
    # default study (nothing trained, the default files untouched).
    default_md = (out / "gain.md").read_text()
    assert main([*args, "--seeds", "2", "--gain-ratios", "0.5,1", "--gain-temperatures", "1",
                 "--gain-policy", "none", "--classifier-steps", "4"]) == 0  # fmt: skip
    said = capsys.readouterr()
    assert "train scarce" not in said.err and "evaluate scarce" in said.err
    assert f"gain: {out / 'gain-none-4steps.md'}" in said.out  # the summary names the files it wrote
    assert (out / "gain.md").read_text() == default_md
    assert len(list(out.glob("n*/runs/*/gain-none-4steps.json"))) == 4
    other = json.loads((out / "gain-none-4steps.json").read_text())
    assert other["command_options"]["gain_policy"] == "none" and "augmentation of the baseline and every " \
        "synthetic arm: none" in (out / "gain-none-4steps.md").read_text()  # fmt: skip
    assert all(s["baseline"]["label"] == "real only, no augmentation" for s in other["sizes"])
    # Other temperatures: every GAN is evaluated again, its real-only classifiers come from the size's file
    # and the classifiers of the arms measured before from its journal: only the new arm's are trained.
    assert len(list(out.glob("n*/runs/*/gain.fits.json"))) == 4  # kept beside each finished evaluation
    capsys.readouterr()
    assert main([*args, "--seeds", "2", "--gain-ratios", "0.5,1", "--gain-temperatures", "0.5,1"]) == 0
    err = capsys.readouterr().err
    assert "evaluate scarce" in err and "real only" not in err
    # (a trained classifier is announced as "<arm>, <ratio>x"; the verdict may name T=1 as the best arm)
    assert "anchored variations (T=0.5), 0.5x" in err and "(T=1)," not in err and "prior samples," not in err
    # The interpolation arm (mstar's remedy), added the same way: only its classifiers are trained.
    assert main([*args, "--seeds", "2", "--gain-ratios", "0.5,1", "--gain-temperatures", "0.5,1",
                 "--gain-interpolation", "0.25,0.75"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert "interpolations of 3 nearest neighbours, 1x" in err and "(T=0.5), 0.5x" not in err
    run6 = json.loads((out / "n6" / "runs" / "scarce" / "gain.json").read_text())
    interp = next(a for a in run6["study"]["arms"] if a["arm"] == "interpolations-n3-0.25-0.75")
    assert interp["mix"] == [0.25, 0.75] and [r["ratio"] for r in interp["ratios"]] == [0.5, 1.0]
    assert "interpolations between latent nearest neighbours" in (out / "gain.md").read_text()
    # The weak-classes arm: the cross-validation of the baseline runs once per size (shared by its GAN seeds).
    assert main([*args, "--seeds", "2", "--gain-ratios", "0.5,1", "--gain-temperatures", "0.5,1",
                 "--gain-interpolation", "0.25,0.75", "--gain-weak-classes", "yes"]) == 0  # fmt: skip
    err = capsys.readouterr().err
    assert err.count("weak classes: 2-fold cross-validation") == 2 and "(T=0.5), 0.5x" not in err
    assert "most for the weakest classes, 1x" in err
    for n in (6, 10):
        errors = json.loads((out / f"n{n}" / "gain.real-fits.json").read_text())["fits"][
            "class-errors#2folds"
        ]
        assert len(errors) == 2 and all(0 <= e <= 1 for e in errors)
    weak = next(a for a in json.loads((out / "n6" / "runs" / "scarce" / "gain.json").read_text())["study"]["arms"]
                if a["arm"].startswith("weak-classes-f2-"))  # fmt: skip
    assert sum(r["n_generated"] for r in weak["ratios"]) == round(0.5 * 12) + 12 and "weights" in weak
    # An experiment's own target per size (MSTAR: +3 points at 10% and 20%, 50% reported only).
    from vaemsgan.experiments.gain_report import pool_size, size_lines

    runs6 = [json.loads(p.read_text()) for p in sorted(out.glob("n6/runs/*/gain.json"))]
    reported = pool_size(6, runs6, ["trouser", "bag"], None)
    assert reported["target_points"] is None and reported["target_met"] is None
    assert "No target at this size (reported)" in "\n".join(
        size_lines(reported, table["trained"]["6"], runs6)
    )
    assert pool_size(6, runs6, ["trouser", "bag"], 1000.0)["target_met"] is False
    # The report names the GAN seeds it pooled, not the --seeds asked (a call limited by --runs pools fewer).
    from vaemsgan.experiments.gain_report import write_gain

    one = pool_size(6, runs6[:1], ["trouser", "bag"], None)
    meta = {"command_options": {"seeds": 2}, "result_name": "one", "budget_minutes": 1}
    write_gain([one], {6: table["trained"]["6"][:1]}, {6: runs6[:1]}, tmp_path / "one", meta, "t")
    assert ", 1 GAN seed(s);" in (tmp_path / "one" / "one.md").read_text()
    assert ", 2 GAN seed(s);" in (out / "gain.md").read_text()
    # Checkpoints deleted (to save disk, or lost with a machine) after the evaluation: the run's evaluation on
    # disk is pooled as it is under the same settings; under others there is nothing to evaluate, said clearly.
    import shutil

    last = [*args, "--seeds", "2", "--gain-ratios", "0.5,1", "--gain-temperatures", "0.5,1",
            "--gain-interpolation", "0.25,0.75", "--gain-weak-classes", "yes"]  # fmt: skip
    pooled = json.loads((out / "gain.json").read_text())["sizes"]
    shutil.rmtree(out / "n6" / "runs" / "scarce" / "train")
    capsys.readouterr()
    assert main(last) == 0
    err = capsys.readouterr().err
    assert "scarce: no checkpoint left, its evaluation on disk (gain.json) is pooled" in err
    assert "train scarce" not in err and "evaluate scarce" not in err
    assert json.loads((out / "gain.json").read_text())["sizes"] == pooled
    assert main([*last[:-2], "--gain-weak-classes", "no"]) == 2
    assert "no such checkpoint file or run folder" in capsys.readouterr().err


def test_curves_plot_accepts_an_fid_interval_above_its_estimate(tmp_path: Path) -> None:
    """At FID ~1 the percentile bootstrap interval lies wholly above the estimate (resampling raises FID);
    the plot draws it instead of failing at the end of an hour-long run."""
    from vaemsgan.experiments.curve_report import plot_curves

    rows = [
        {
            "model": "m",
            "minutes": mins,
            "fid": {"mean": fid, "low": fid + 0.1, "high": fid + 1.0},
            "kid": 0.4,
            "tstr": {"mean": 0.85, "low": 0.84, "high": 0.86, "n": 3},
            "coverage": 0.9,
        }
        for mins, fid in ((30, 2.6), (60, 1.1))
    ]
    plot_curves(rows, 0.88, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000


def test_augment_runs_differ_from_scarce_only_in_augmentation(tmp_path: Path) -> None:
    opts = ReproduceOptions(data="cifar-folder", channels=3, per_class=500)
    plans = {p.name: p.cfg for p in plan_runs(EXPERIMENTS["augment"], tmp_path, opts)}
    assert sorted(plans) == ["scarce", "scarce-ada", "scarce-diffaugment"]
    for cfg in plans.values():
        assert (cfg.data.channels, cfg.data.per_class) == (3, 500)
    assert plans["scarce"].train.augment == "" and plans["scarce"].train.ada_target == 0.0
    assert plans["scarce-diffaugment"].train.augment == "color,translation,cutout"
    assert plans["scarce-diffaugment"].train.ada_target == 0.0
    assert plans["scarce-ada"].train.augment == "color,translation,cutout"
    assert plans["scarce-ada"].train.ada_target == 0.6
    # Apart from augmentation, the three runs are the same model trained the same way.
    same = [
        {**c.to_dict(), "train": {**c.to_dict()["train"], "augment": "", "ada_target": 0.0}}
        for c in plans.values()
    ]
    assert same[0] == same[1] == same[2]


def test_a_config_key_added_later_keeps_finished_runs_train_keys() -> None:
    """A finished run's TRAINED.json holds the train key of its config as it was: a key added since, at the
    value its absence meant, must not change that key (or every finished run would refuse: "trained with other
    settings"); another value is another configuration."""
    from vaemsgan.experiments.runner import LATER_KEYS, keyed_config
    from vaemsgan.presets import build_config

    cfg = build_config("scarce")
    before = cfg.to_dict()
    for (section, key), legacy in LATER_KEYS.items():
        assert before[section][key] in legacy  # the default is a legacy value
        del before[section][key]  # the dict a run trained before the key existed was hashed from
    assert keyed_config(cfg) == before
    nearest = build_config("scarce", {"model": {"g_upsample": "nearest"}})
    assert keyed_config(nearest)["model"]["g_upsample"] == "nearest"
    other_subset = build_config("scarce", {"data": {"per_class": 27, "subset_seed": 3}})
    assert keyed_config(other_subset)["data"]["subset_seed"] == 3


def test_subset_runs_record_the_subset_seed_they_trained_on(tmp_path: Path) -> None:
    """Every seed of a `--per-class` run trains on Context's one subset: the checkpoint's config must say so
    (data.subset_seed), so that `vaemsgan train --config` or `curate` on it draws the same images, not the
    subset of its train.seed. A checkpoint written before the key (none in its data section) learns the
    same as the plan that now records it."""
    from vaemsgan.config import Config
    from vaemsgan.data import load_from_config
    from vaemsgan.experiments.context import SUBSET_SEED, Context
    from vaemsgan.experiments.registry import EXPERIMENTS
    from vaemsgan.experiments.runner import learning_config, plan_runs, train_key

    opts = ReproduceOptions(data="fashion-mnist-mini", per_class=5, seeds=2, resolution=16)
    plans = plan_runs(EXPERIMENTS["gain"], tmp_path, opts)
    seed1 = next(p for p in plans if p.seed == 1)
    assert seed1.cfg.train.seed == 1 and seed1.cfg.data.subset_seed == SUBSET_SEED
    subset = load_from_config(seed1.cfg.data, "train", seed=seed1.cfg.train.seed)
    ctx_train = Context(opts, lambda _m: None).real(None).train
    assert torch.equal(subset.images, ctx_train.images)
    # Without the key, train.seed would have drawn another subset (the bug this key fixes).
    legacy = Config.from_dict(
        {**seed1.cfg.to_dict(), "data": {**seed1.cfg.to_dict()["data"], "subset_seed": None}}
    )
    assert not torch.equal(load_from_config(legacy.data, "train", seed=1).images, subset.images)
    old = seed1.cfg.to_dict()
    del old["data"]["subset_seed"]
    assert learning_config(old) == learning_config(seed1.cfg.to_dict())
    assert train_key(seed1, opts) == train_key(
        type(seed1)(seed1.spec, seed1.seed, Config.from_dict(old), seed1.folder), opts
    )


def test_grids_image_keeps_colour_and_labels_each_grid(tmp_path: Path) -> None:
    """curves-grids.png of colour runs is in colour (it was once flattened to grey), grey runs stay grey, and
    each block carries its run's name and each grid its mark."""
    from types import SimpleNamespace

    import numpy as np
    from PIL import Image

    from vaemsgan.checkpoint import snapshot_path
    from vaemsgan.experiments.curve_report import grids_image

    def plan(name: str, colour: tuple[int, int, int] | int, mode: str) -> SimpleNamespace:
        folder = tmp_path / name
        for m in (5, 15):
            p = snapshot_path(folder / "train", m).with_suffix(".png")
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.new(mode, (40, 30), colour).save(p)
        return SimpleNamespace(name=name, folder=folder)

    red = plan("red", (200, 20, 20), "RGB")
    grids_image([red, plan("grey", 90, "L")], [5.0, 15.0, 30.0], tmp_path / "rgb.png")
    with Image.open(tmp_path / "rgb.png") as im:
        assert im.mode == "RGB"
        px = np.asarray(im)
    assert ((px == (200, 20, 20)).all(axis=-1)).sum() >= 2 * 40 * 30 * 0.9  # both red grids, in colour
    assert ((px == (90, 90, 90)).all(axis=-1)).sum() >= 2 * 40 * 30 * 0.9  # the grey run beside them
    assert (px.max(axis=-1) < 60).any()  # text: the labels are drawn in black on the white margins
    grids_image([plan("grey2", 90, "L")], [5.0, 15.0], tmp_path / "grey.png")
    with Image.open(tmp_path / "grey.png") as im:
        assert im.mode == "L" and im.height > 30 + 12  # a label band above the grids


def test_grids_figure_shows_colour_grids_in_colour(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from vaemsgan.experiments.tables import grids_figure

    Image.new("RGB", (64, 64), (210, 30, 30)).save(tmp_path / "red.png")
    Image.new("L", (64, 64), 120).save(tmp_path / "grey.png")
    results = [
        {"run": "red", "grid": str(tmp_path / "red.png")},
        {"run": "grey", "grid": str(tmp_path / "grey.png")},
    ]
    out = grids_figure(results, tmp_path / "grids.png", "t")
    assert out is not None
    with Image.open(out) as im:
        px = np.asarray(im.convert("RGB")).astype(int)
    red = (px[..., 0] > 180) & (px[..., 1] < 60) & (px[..., 2] < 60)
    grey = (abs(px[..., 0] - 120) < 3) & (px[..., 0] == px[..., 1]) & (px[..., 1] == px[..., 2])
    assert red.sum() > 1000 and grey.sum() > 1000  # the colour panel in colour, the grey one grey


def test_a_snapshot_another_worker_evaluates_is_skipped_not_evaluated_twice(tmp_path) -> None:
    """Parallel `reproduce --no-train` workers share a run's snapshots out: while one process holds a snapshot's
    evaluation, another skips it (None, said in the log) instead of repeating ~11 minutes of work; once the holder
    is gone the snapshot is free again, and a result it wrote is read back without evaluating."""
    import json
    import subprocess
    import sys
    from types import SimpleNamespace

    from vaemsgan.experiments.curves import evaluate_snapshot, snapshot_eval_key
    from vaemsgan.utils.lock import file_lock_if_free

    folder = tmp_path / "runs" / "default"
    (folder / "train" / "snapshots").mkdir(parents=True)
    (folder / "train" / "snapshots" / "cpu-5min.pt").write_bytes(b"not read while the evaluation is held")
    lock = folder / "curve" / "cpu-5min.lock"
    lock.parent.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from vaemsgan.utils.lock import file_lock_if_free\n"
         "with file_lock_if_free(sys.argv[1]) as h:\n    print('held' if h is None else 'busy', flush=True); "
         "time.sleep(60)", str(lock)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    opts = SimpleNamespace(
        per_class_generated=10, classifier_steps=5, eval_seeds=1, domain_steps=5, n_boot=10, per_class=None,
        classifier="small", force=False,
    )  # fmt: skip
    plan = SimpleNamespace(folder=folder, name="default")
    ctx = SimpleNamespace(log=lines.append)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert evaluate_snapshot(plan, 5.0, ctx, opts, {}) is None
        assert lines == [f"default at 5 CPU-minutes: being evaluated by PID {holder.pid}; skipped here"]
        with file_lock_if_free(lock) as other:
            assert other == holder.pid
    finally:
        holder.kill()
        holder.wait()
    # The holder finished it: its result is read back (the snapshot file itself is never opened).
    done = {"eval_key": snapshot_eval_key(opts), "fid": 1.5}
    (folder / "curve" / "cpu-5min.json").write_text(json.dumps(done))
    assert evaluate_snapshot(plan, 5.0, ctx, opts, {}) == done
    with file_lock_if_free(lock) as other:
        assert other is None  # free again once its holder died


def test_reference_classifiers_train_once_where_the_subset_is_the_whole_set(
    tmp_path: Path, monkeypatch
) -> None:
    """A 10% study's TRTR subset (500 per class of 500) is its whole training set: the 'all images' classifier is
    the same seeded network, so it is not trained a second time, and its accuracy is what training it gives."""
    from types import SimpleNamespace

    import vaemsgan.evaluation.classifier as clf
    from vaemsgan.data import ImageSet
    from vaemsgan.experiments.context import judge_config
    from vaemsgan.experiments.curves import reference_classifiers

    g = torch.Generator().manual_seed(0)

    def image_set(per_class: int) -> ImageSet:
        images = torch.randint(0, 256, (2 * per_class, 1, 16, 16), dtype=torch.uint8, generator=g)
        images[per_class:] //= 4  # class b darker: something to learn
        labels = torch.arange(2).repeat_interleave(per_class)
        return ImageSet(images=images, labels=labels, class_names=["a", "b"], source="test")

    train, test = image_set(6), image_set(4)
    calls: list[int] = []
    train_classifier = clf.train_classifier

    def counting(images, labels, *args, **kwargs):
        calls.append(len(images))
        return train_classifier(images, labels, *args, **kwargs)

    monkeypatch.setattr(clf, "train_classifier", counting)
    opts = ReproduceOptions(data="fashion-mnist-mini", classifier_steps=2, eval_seeds=2, quick=True)
    ctx = SimpleNamespace(real=lambda _: SimpleNamespace(train=train, test=test), log=lambda msg: None)
    whole = reference_classifiers(ctx, opts, tmp_path / "whole", per_class=6)
    assert calls == [12, 12] and whole["trtr_all"] == whole["trtr"]
    alone = train_classifier(train.images, train.labels, 2, judge_config(opts), seed=1)
    assert clf.accuracy(alone, test.images, test.labels) == whole["trtr_all"][1]
    calls.clear()
    reference_classifiers(ctx, opts, tmp_path / "part", per_class=3)
    assert calls == [6, 12, 6, 12]
