"""The command line end to end on a temporary ImageFolder: train -> generate -> reconstruct -> interpolate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaemsgan.cli.main import main
from vaemsgan.data import load_images
from vaemsgan.generation import load_model, reconstruct_images

TINY = [
    "--resolution",
    "16",
    "--batch-size",
    "8",
    "--g-width",
    "8",
    "--d-width",
    "8",
    "--latent-dim",
    "16",
    "--set",
    "model.e_width=8",
    "--sample-every",
    "5",
    "--checkpoint-every",
    "5",
    "--log-every",
    "5",
    "--no-progress",
    "--threads",
    "1",
]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> tuple[Path, Path]:
    """One tiny run through `vaemsgan train` on a generated ImageFolder, shared by the tests below."""
    root = tmp_path_factory.mktemp("cli")
    data = root / "data"
    rng = np.random.default_rng(0)
    for k, name in enumerate(["circle", "square", "cross"]):
        for i in range(12):
            img = np.clip(rng.normal(60 + 60 * k, 30, (20, 24, 3)), 0, 255).astype(np.uint8)
            (data / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(data / name / f"{i}.png")
    run = root / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--steps", "10", *TINY]) == 0
    return data, run


def test_train_outputs(cli_run) -> None:
    _, run = cli_run
    assert (run / "config.yaml").is_file() and (run / "samples.png").is_file()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-0000005.pt", "step-0000010.pt"]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(s)["step"] for s in lines] == [5, 10]
    grid = Image.open(run / "samples.png")
    assert grid.size[1] == 3 * (16 + 2) + 2  # one row per class


def test_generate_writes_n_per_class_with_complete_manifest(cli_run, tmp_path, run_cli) -> None:
    _, run = cli_run
    out = tmp_path / "gen"
    gen = ("generate", "--checkpoint", run, "--out", out, "--no-progress")
    assert run_cli(*gen, "--per-class", 7, "--device", "cpu") == 0
    for cls in ("circle", "square", "cross"):
        files = sorted((out / cls).iterdir())
        assert [f.name for f in files] == [f"{i:06d}.png" for i in range(7)]
        for f in files:
            with Image.open(f) as im:
                assert im.size == (16, 16) and im.mode == "L"
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["files"]) == 21 and manifest["per_class"] == 7
    assert {e["class"] for e in manifest["files"]} == {"circle", "square", "cross"}
    assert all((out / e["file"]).is_file() for e in manifest["files"])
    assert len(manifest["checkpoint_sha256"]) == 64 and manifest["seed"] == 0
    # The generated folder is a valid ImageFolder for our own loader (and for a classifier's).
    again = load_images(str(out), resolution=16, channels=1)
    assert again.counts() == [7, 7, 7]


def test_generate_is_deterministic_and_refuses_to_overwrite(cli_run, tmp_path, capsys, run_cli) -> None:
    _, run = cli_run
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        gen = ("generate", "--checkpoint", run, "--out", out, "--no-progress")
        assert run_cli(*gen, "--per-class", 3, "--batch-size", 2) == 0
    assert (a / "circle" / "000002.png").read_bytes() == (b / "circle" / "000002.png").read_bytes()
    assert main(["generate", "--checkpoint", str(run), "--per-class", "3", "--out", str(a)]) != 0
    assert "--force" in capsys.readouterr().err


def test_reconstruct_keeps_count_and_names(cli_run, tmp_path) -> None:
    data, run = cli_run
    out = tmp_path / "rec"
    assert main(["reconstruct", "--checkpoint", str(run), "--input", str(data), "--out", str(out)]) == 0
    src = sorted(p.relative_to(data) for p in data.rglob("*.png"))
    dst = sorted(p.relative_to(out) for p in out.rglob("*.png"))
    assert src == dst and len(dst) == 36


def test_reconstruction_is_closer_to_its_input_than_to_other_images(cli_run) -> None:
    data, run = cli_run
    model = load_model(run)
    ds = load_images(str(data), resolution=16, channels=1)
    rec = reconstruct_images(model, ds.images, ds.labels).float()
    assert rec.shape == ds.images.shape
    # The decoder uses the encoder's code: reconstructions of different inputs differ.
    assert (rec[0] - rec[1]).abs().mean() > 0


def test_interpolate_grid(cli_run, tmp_path) -> None:
    _, run = cli_run
    out = tmp_path / "interp.png"
    assert main(["interpolate", "--checkpoint", str(run), "--out", str(out), "--steps", "5"]) == 0
    with Image.open(out) as im:
        assert im.size == (5 * 18 + 2, 3 * 18 + 2)


def test_resume_continues_to_more_steps(cli_run, tmp_path) -> None:
    data, run = cli_run
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    assert main(["train", "--out", str(copy), "--resume", "--steps", "15", "--no-progress"]) == 0
    state = torch.load(copy / "checkpoints" / "step-0000015.pt", weights_only=True)
    assert state["step"] == 15


def test_presets_command_lists_and_prints_yaml(capsys) -> None:
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ("default", "paper", "paper-mode-7", "dcgan", "cdcgan-wgan-gp", "vae", "vaegan"):
        assert name in out
    assert main(["presets", "paper-mode-4"]) == 0
    text = capsys.readouterr().out
    assert "g_kernel: 5" in text and "- 5" in text


def test_config_file_round_trip(cli_run, tmp_path) -> None:
    """A run's config.yaml trains an identical config; flags override it."""
    from vaemsgan.cli.main import build_parser
    from vaemsgan.cli.train_cmd import resolve_train_config

    _, run = cli_run
    args = build_parser().parse_args(
        ["train", "--config", str(run / "config.yaml"), "--out", str(tmp_path / "x")]
    )
    cfg = resolve_train_config(args)
    saved = (run / "config.yaml").read_text()
    assert cfg.to_yaml() == saved
    args = build_parser().parse_args(
        ["train", "--config", str(run / "config.yaml"), "--out", "x", "--scales", "1"]
    )
    assert resolve_train_config(args).model.scales == 1


def test_demo_runs_within_its_budget(tmp_path, capsys) -> None:
    out = tmp_path / "demo"
    assert (
        main(
            ["demo", "--out", str(out), "--steps", "3", "--minutes", "1", "--per-class", "4", "--no-progress"]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "sample grid" in text and str(out / "generated") in text
    assert (out / "run" / "samples.png").is_file()
    assert len(list((out / "generated").rglob("*.png"))) == 40
    assert main(["demo", "--out", str(out), "--steps", "3"]) != 0  # kept without --force


# Tiny networks and a monitor check every 4 steps: the demo's whole path, monitor records in its history.
TINY_DEMO = [
    "--set", "model.g_width=4", "--set", "model.d_width=4", "--set", "model.e_width=4",
    "--set", "model.latent_dim=8", "--set", "train.batch_size=8", "--set", "train.log_every=2",
    "--set", "train.monitor_every=4", "--no-progress",
]  # fmt: skip


def test_demo_crosses_monitor_checks_and_its_next_command_runs(tmp_path, capsys, monkeypatch) -> None:
    """The demo once crashed at its end on the monitor's records in the step log (no images_per_s); its
    printed `evaluate` command must run as printed, from the repository root."""
    import shlex

    from vaemsgan.training.steplog import monitor_records, training_records

    monkeypatch.chdir(tmp_path)
    out = Path("demo")
    argv = ["demo", "--out", str(out), "--steps", "12", "--minutes", "5", "--per-class", "4", *TINY_DEMO]
    assert main(argv) == 0
    text = capsys.readouterr().out
    log = out / "run" / "metrics.jsonl"
    assert [r.step for r in monitor_records(log)] == [4, 8, 12]
    assert len(training_records(log)) == 6
    summary = next(line for line in text.splitlines() if line.startswith("demo finished"))
    assert "12 steps" in summary and "nan" not in summary and "training images/s" in summary
    assert str(out / "run" / "samples.png") in text and str(out / "generated") in text
    assert len(list((out / "generated").rglob("*.png"))) == 40
    cmd = next(line for line in text.splitlines() if "vaemsgan evaluate" in line)
    cmd = cmd.split("next: measure them with", 1)[1].split("   (", 1)[0].strip()
    words = shlex.split(cmd)
    assert words[1:3] == ["evaluate", "--quick"]
    # As printed, from the folder the demo ran in: `vaemsgan` when it is on PATH, else the venv's script.
    import shutil
    import subprocess

    assert shutil.which(words[0]) or Path(words[0]).is_file(), words[0]
    done = subprocess.run([*words, "--no-progress"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "report").is_dir() and any((out / "report").iterdir())


def test_train_then_generate_with_the_monitor_on(tmp_path) -> None:
    data = tmp_path / "data"
    rng = np.random.default_rng(1)
    for k, name in enumerate(["a", "b"]):
        (data / name).mkdir(parents=True)
        for i in range(10):
            img = np.clip(rng.normal(80 + 80 * k, 30, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(data / name / f"{i}.png")
    run = tmp_path / "run"
    argv = [
        "train",
        "--data",
        str(data),
        "--out",
        str(run),
        "--steps",
        "15",
        *TINY,
        "--set",
        "train.monitor_every=5",
    ]
    assert main(argv) == 0
    from vaemsgan.training.steplog import monitor_records

    assert [r.step for r in monitor_records(run / "metrics.jsonl")] == [5, 10, 15]
    # A 15-step run has not reached the quality a best state needs (evaluation/monitor.py): no best.pt, and
    # generate takes the newest checkpoint.
    assert not any(r.values["best"] for r in monitor_records(run / "metrics.jsonl"))
    assert not (run / "best.pt").is_file()
    gen = tmp_path / "gen"
    assert (
        main(["generate", "--checkpoint", str(run), "--per-class", "3", "--out", str(gen), "--no-progress"])
        == 0
    )
    assert sorted(p.parent.name for p in gen.rglob("*.png")) == ["a"] * 3 + ["b"] * 3
