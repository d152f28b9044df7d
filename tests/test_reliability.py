"""Reliability and security (issue 6): bad input, interruptions, numerical faults, untrusted files.

Every failure mode in docs/RELIABILITY.md has a test here (or in tests/test_data.py for the image loader).
CLI errors are checked as the user sees them: exactly one `vaemsgan: error: ...` line on stderr, a non-zero
exit and no traceback. Training runs are tiny (16 px, 8-channel networks) so the whole file stays fast.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vaemsgan
from vaemsgan import checkpoint as ckpt_mod
from vaemsgan.checkpoint import (
    FORMAT,
    list_checkpoints,
    load_checkpoint,
    load_latest_valid,
    non_finite_tensors,
    save_checkpoint,
)
from vaemsgan.cli import commands
from vaemsgan.cli.main import main
from vaemsgan.config import SECTIONS, Config, parse_yaml
from vaemsgan.errors import CheckpointError, ConfigError, OutputExistsError, VaemsganError
from vaemsgan.generation import sampler
from vaemsgan.generation.sampler import generate_folder, load_model
from vaemsgan.training.recovery import NonFiniteLossError
from vaemsgan.training.trainer import Trainer
from vaemsgan.utils import io as io_mod
from vaemsgan.utils.io import atomic_write, safe_name, safe_names, trim_jsonl

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
# The smallest networks the CLI accepts: every command below trains in about a second.
TINY = [
    "--resolution", "16", "--threads", "1", "--batch-size", "4", "--no-progress", "--device", "cpu",
    "--set", "model.g_width=8", "--set", "model.d_width=8", "--set", "model.e_width=8",
    "--set", "model.latent_dim=8",
]  # fmt: skip


# ---------------------------------------------------------------- helpers


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr). argparse errors exit via SystemExit."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_line_error(rc: int, err: str, *needles: str) -> None:
    """The user-facing contract: non-zero exit, one `vaemsgan: error:` line naming the problem."""
    assert rc != 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("vaemsgan: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def run_cli(
    args: list[str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:  # pragma: no cover - helper
    return subprocess.run(
        [sys.executable, "-m", "vaemsgan", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def wait_for(cond: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float = 90) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training exited ({proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def model_weights(path: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)
    out = {f"{n}.{k}": v for n, sd in state["models"].items() for k, v in sd.items()}
    out.update({f"ema.{k}": v for k, v in (state["ema"] or {}).items()})
    return out


def no_temp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp")]


@pytest.fixture
def data(tmp_path: Path, make_imagefolder) -> Path:
    """Two classes of eight 16 px images."""
    return make_imagefolder(tmp_path / "data", classes=("a", "b"), per_class=8, size=(16, 16), mode="L")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-step run (two classes) to generate from and to corrupt copies of."""
    from vaemsgan.data import load_images
    from vaemsgan.presets import build_config

    run = tmp_path_factory.mktemp("trained") / "run"
    cfg = build_config(
        "default",
        {
            "data.resolution": 16,
            "model.latent_dim": 8,
            "model.g_width": 8,
            "model.e_width": 8,
            "model.d_width": 8,
        },
    )
    images = load_images("fashion-mnist-mini", resolution=16, per_class=8, classes=["trouser", "sneaker"])
    Trainer(cfg, images, run, progress=False, log=lambda s: None).train(2)
    return run


# ---------------------------------------------------------------- bad input through the CLI


def test_train_bad_data_paths_and_layouts(tmp_path: Path, capsys, make_imagefolder) -> None:
    rc, _, err = cli(capsys, "train", "--data", tmp_path / "nope", "--out", tmp_path / "o", *TINY)
    assert_one_line_error(rc, err, "nope: no such folder")
    (tmp_path / "file.png").write_text("x")
    rc, _, err = cli(capsys, "train", "--data", tmp_path / "file.png", "--out", tmp_path / "o", *TINY)
    assert_one_line_error(rc, err, "file.png: is a file, not a folder")
    (tmp_path / "flat").mkdir()
    rc, _, err = cli(capsys, "train", "--data", tmp_path / "flat", "--out", tmp_path / "o", *TINY)
    assert_one_line_error(rc, err, "flat: no class subfolders")
    root = make_imagefolder(tmp_path / "d", per_class=3, size=(16, 16))
    (root / "empty").mkdir()
    rc, _, err = cli(capsys, "train", "--data", root, "--out", tmp_path / "o", *TINY)
    assert_one_line_error(rc, err, "class folder 'empty' has no images")
    (root / "empty" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")  # a truncated PNG: header only
    rc, _, err = cli(capsys, "train", "--data", root, "--out", tmp_path / "o", *TINY)
    assert_one_line_error(rc, err, "class folder 'empty' has no usable images")
    assert not (tmp_path / "o" / "checkpoints").exists()


@pytest.mark.skipif(IS_ROOT, reason="root can read a folder whatever its permissions")
def test_train_unreadable_data(tmp_path: Path, capsys, data: Path) -> None:  # pragma: no cover - non-root
    (data / "a").chmod(0)
    try:
        rc, _, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "o", *TINY)
    finally:
        (data / "a").chmod(0o755)
    assert_one_line_error(rc, err, "a")


def test_train_non_images_skipped_with_count_or_strict_error(tmp_path: Path, capsys, data: Path) -> None:
    (data / "a" / "notes.txt").write_text("labels")
    (data / "a" / "fake.png").write_text("not a png")
    (data / "b" / "empty.jpg").write_bytes(b"")
    rc, out, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "o", "--steps", "1", *TINY)
    assert rc == 0, err
    assert "skipped 3 unreadable or non-image files" in out
    rc, _, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "o2", "--strict", *TINY)
    assert_one_line_error(rc, err, "strict mode")


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--resolution", "48"], "argument --resolution: '48' is not one of 16, 32, 64, 128, 256"),
        (["--set", "data.resolution=48"], "'data.resolution' = 48: must be a power of two from 16 to 256"),
        (["--set", "data.resolution=512"], "'data.resolution' = 512 is out of range (16 to 256)"),
        (["--channels", "2"], "argument --channels: '2' is not one of 1, 3"),
        (["--set", "data.channels=4"], "'data.channels' = 4: allowed values are 1, 3"),
        (["--per-class", "20"], "class 'a' has only 8 images, fewer than per_class = 20"),
        (["--set", "nodot"], "--set 'nodot': expected SECTION.KEY=VALUE"),
        (["--set", "foo.bar=1"], "unknown config section 'foo'"),
        (["--set", "model.wings=2"], "unknown config key 'model.wings'"),
        (["--set", "model.latent_dim=abc"], "'model.latent_dim' must be an integer, got 'abc'"),
        (["--set", "train.lr_g=7"], "'train.lr_g' = 7.0 is out of range (0.0 to 1.0)"),
        (["--set", "train.nan_rollbacks=-1"], "'train.nan_rollbacks' = -1 is out of range (0 to 100)"),
        (["--lr-d", "nan"], "argument --lr-d: 'nan' is not a number from 0 to 1"),
        (["--set", "train.lr_d=nan"], "'train.lr_d' must be a finite number"),
        (["--steps", "ten"], "argument --steps: 'ten' is not an integer from 1 to 1000000000"),
        (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "tpu"], "--device"),
    ],
)
def test_train_bad_options(tmp_path: Path, capsys, data: Path, extra: list[str], needle: str) -> None:
    rc, _, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "o", *TINY, *extra)
    assert_one_line_error(rc, err, needle)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("model:\n  bogus: 1\n", "unknown config key 'model.bogus' (allowed: latent_dim"),
        ("train:\n  steps: many\n", "'train.steps' must be an integer, got 'many'"),
        ("train:\n  batch_size: 1\n", "'train.batch_size' = 1 is out of range (2 to 65536)"),
        ("model:\n  d_norm: group\n", "'model.d_norm' = 'group': allowed values are batch, layer"),
        ("model: 3\n", "config section 'model' must be a mapping"),
        ("- a\n- b\n", "config must be a mapping of sections"),
        ("train: [\n", "config is not valid YAML"),
        ("weights: {}\n", "unknown config section 'weights'"),
    ],
)
def test_train_bad_config_file(tmp_path: Path, capsys, data: Path, text: str, needle: str) -> None:
    cfg = tmp_path / "my.yaml"
    cfg.write_text(text)
    rc, _, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "o", "--config", cfg, *TINY)
    assert_one_line_error(rc, err, "my.yaml: ", needle)


def test_train_config_file_missing_or_binary(tmp_path: Path, capsys, data: Path) -> None:
    rc, _, err = cli(
        capsys, "train", "--data", data, "--out", tmp_path / "o", "--config", tmp_path / "x.yaml"
    )
    assert_one_line_error(rc, err, "x.yaml: cannot read config")
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00\x81")
    rc, _, err = cli(
        capsys, "train", "--data", data, "--out", tmp_path / "o", "--config", tmp_path / "bin.yaml"
    )
    assert_one_line_error(rc, err, "bin.yaml: config is not a text file")


def test_one_class_falls_back_to_unconditional(tmp_path: Path, capsys, make_imagefolder) -> None:
    root = make_imagefolder(tmp_path / "one", classes=("only",), per_class=6, size=(16, 16))
    rc, out, err = cli(capsys, "train", "--data", root, "--out", tmp_path / "run", "--steps", "2", *TINY)
    assert rc == 0, err
    assert "only one class ('only'): training an unconditional model" in out
    state = load_checkpoint(list_checkpoints(tmp_path / "run")[-1])
    assert state["config"]["model"]["conditional"] is False and state["class_names"] == ["only"]
    rc, out, err = cli(capsys, "generate", "--checkpoint", tmp_path / "run", "--per-class", "3",
                       "--out", tmp_path / "gen", "--no-progress", "--device", "cpu")  # fmt: skip
    assert rc == 0, err
    assert len(list((tmp_path / "gen" / "only").glob("*.png"))) == 3


def test_fewer_images_than_batch_lowers_it(tmp_path: Path, capsys, data: Path) -> None:
    rc, out, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "o", "--steps", "1", *TINY,
                       "--batch-size", "64")  # fmt: skip
    assert rc == 0, err
    assert "batch size lowered from 64 to 16" in out


def test_output_folder_not_empty_refused_without_force(tmp_path: Path, capsys, data: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "thesis.tex").write_text("my work")
    rc, _, err = cli(capsys, "train", "--data", data, "--out", out, *TINY)
    assert_one_line_error(rc, err, "exists and is not empty; use --force")
    assert sorted(p.name for p in out.iterdir()) == ["thesis.tex"]  # nothing written
    rc, _, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "run", "--steps", "1", *TINY)
    assert rc == 0, err
    rc, _, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "run", *TINY)
    assert_one_line_error(rc, err, "already holds a run; use --resume")
    rc, _, err = cli(capsys, "generate", "--checkpoint", tmp_path / "run", "--per-class", "1", "--out", out)
    assert_one_line_error(rc, err, "not empty; use --force")
    (tmp_path / "file").write_text("x")
    rc, _, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "file", *TINY)
    assert_one_line_error(rc, err, "exists and is not a folder")
    rc, _, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "empty-run", "--resume", *TINY)
    assert_one_line_error(rc, err, "nothing to resume")


def test_unwritable_output_folder(tmp_path: Path, capsys, data: Path, monkeypatch) -> None:
    """Root writes anywhere chmod allows nothing, so: a folder under a regular file (fails for root too),
    and a read-only filesystem simulated at the write probe."""
    (tmp_path / "file").write_text("x")
    rc, _, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "file" / "run", *TINY)
    assert_one_line_error(rc, err, "cannot create run folder (Not a directory)")
    rc, _, err = cli(
        capsys, "generate", "--checkpoint", "x", "--per-class", "1", "--out", tmp_path / "file" / "g"
    )
    assert_one_line_error(rc, err)  # the checkpoint is checked first; either way one line

    def read_only(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(io_mod.tempfile, "mkstemp", read_only)
    rc, _, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "ro", *TINY)
    assert_one_line_error(rc, err, "ro: run folder is not writable (Read-only file system)")


@pytest.mark.skipif(IS_ROOT, reason="root writes into a read-only (0555) folder")
def test_read_only_output_folder_chmod(tmp_path: Path, capsys, data: Path) -> None:  # pragma: no cover
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        rc, _, err = cli(capsys, "train", "--data", data, "--out", ro / "run", *TINY)
    finally:
        ro.chmod(0o755)
    assert_one_line_error(rc, err, "run")


def test_check_data_reports_everything_up_front(tmp_path: Path, capsys, make_imagefolder) -> None:
    root = make_imagefolder(tmp_path / "d", classes=("cat", "dog"), per_class=3, size=(20, 20))
    (root / "dog" / "0000.png").write_bytes((root / "dog" / "0000.png").read_bytes()[:60])  # truncated
    (root / "dog" / "readme.txt").write_text("hi")
    (root / "cat" / "copy.png").write_bytes((root / "cat" / "0001.png").read_bytes())  # duplicate
    (root / "bird").mkdir()
    rc, _, err = cli(capsys, "check-data", root, "--resolution", "48")
    assert_one_line_error(rc, err, "argument --resolution: '48' is not one of 16, 32, 64, 128, 256")
    rc, out, err = cli(capsys, "check-data", root, "--resolution", "64", "--per-class", "3")
    assert rc == 1, err
    for needle in (
        "cat ",
        "dog ",
        "0000.png: corrupt or truncated image",
        "readme.txt: not an image file",
        "duplicate",
        "class folder 'bird' has no images",
        "smaller than 64 px on the shorter side will be upscaled",
        "class 'dog' has only 2 images, fewer than per_class = 3",
        "Result: FAILED",
    ):
        assert needle in out, needle
    assert re.search(r"cat\s+4\s+0\s+1", out) and re.search(r"dog\s+2\s+2\s+0", out), out


# ---------------------------------------------------------------- checkpoints: foreign, corrupt, crafted


def _checkpoint_variants(run: Path, tmp: Path) -> dict[str, tuple[Path, str]]:
    """Broken or foreign checkpoint files -> (path, what the error must say)."""
    good = list_checkpoints(run)[-1]
    state = torch.load(good, weights_only=True)
    out: dict[str, tuple[Path, str]] = {}

    def put(name: str, obj: object, needle: str) -> None:
        path = tmp / f"{name}.pt"
        torch.save(obj, path)
        out[name] = (path, needle)

    (tmp / "text.pt").write_text("hello, I am a text file\n")
    out["text"] = (tmp / "text.pt", "not a vaemsgan checkpoint (not a PyTorch zip archive")
    (tmp / "zero.pt").write_bytes(b"")
    out["zero-byte"] = (tmp / "zero.pt", "empty file")
    blob = good.read_bytes()
    (tmp / "truncated.pt").write_bytes(blob[: len(blob) // 2])
    out["truncated"] = (tmp / "truncated.pt", "not a PyTorch zip archive; truncated")
    damaged = bytearray(blob)
    mid = len(damaged) // 2
    damaged[mid : mid + 4096] = os.urandom(4096)  # zip directory intact, data garbled
    (tmp / "damaged.pt").write_bytes(bytes(damaged))
    out["damaged"] = (tmp / "damaged.pt", "corrupt checkpoint (checksum mismatch in ")
    put("other-program", {"weights": torch.zeros(3)}, "not a vaemsgan checkpoint")
    put(
        "newer",
        {**state, "format_version": 99, "vaemsgan_version": "9.0"},
        "written by a newer vaemsgan (9.0",
    )
    put("incomplete", {k: v for k, v in state.items() if k != "models"}, "incomplete vaemsgan checkpoint")
    wider = {**state, "config": {**state["config"], "model": {**state["config"]["model"], "g_width": 16}}}
    put("other-config", wider, "the weights do not fit the model its config describes (size mismatch")
    future = {**state, "config": {**state["config"], "model": {**state["config"]["model"], "hyper": 1}}}
    put("future-config", future, "unknown config key 'model.hyper'")
    return out


def test_generate_refuses_foreign_or_broken_checkpoints(tmp_path: Path, capsys, trained_run: Path) -> None:
    for name, (path, needle) in _checkpoint_variants(trained_run, tmp_path).items():
        rc, _, err = cli(capsys, "generate", "--checkpoint", path, "--per-class", "1",
                         "--out", tmp_path / f"g-{name}", "--device", "cpu")  # fmt: skip
        assert_one_line_error(rc, err, str(path), needle)
        assert not (tmp_path / f"g-{name}").exists(), name
    rc, _, err = cli(
        capsys, "generate", "--checkpoint", tmp_path / "missing.pt", "--per-class", "1", "--out", "g"
    )
    assert_one_line_error(rc, err, "no such checkpoint file or run folder")
    (tmp_path / "norun").mkdir()
    rc, _, err = cli(capsys, "generate", "--checkpoint", tmp_path / "norun", "--per-class", "1", "--out", "g")
    assert_one_line_error(rc, err, "no checkpoints in")


def test_resume_refuses_checkpoint_of_other_data(
    tmp_path: Path, capsys, data: Path, make_imagefolder
) -> None:
    rc, _, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "run", "--steps", "1", *TINY)
    assert rc == 0, err
    other = make_imagefolder(tmp_path / "other", classes=("x", "y"), per_class=8, size=(16, 16))
    state = load_checkpoint(list_checkpoints(tmp_path / "run")[-1])
    state["config"]["data"]["source"] = str(other)
    torch.save(state, list_checkpoints(tmp_path / "run")[-1])
    rc, _, err = cli(capsys, "train", "--out", tmp_path / "run", "--resume", "--steps", "2", *TINY)
    assert_one_line_error(rc, err, "checkpoint classes ['a', 'b'] differ from the data's ['x', 'y']")


class _Payload:
    """Unpickling this runs open(marker, 'w'): a stand-in for any code a crafted checkpoint could run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def test_malicious_pickle_checkpoint_runs_no_code(tmp_path: Path, capsys) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "format_version": 1, "payload": _Payload(marker)}, evil)
    with pytest.raises(CheckpointError, match=r"refused to load: .*could run code.*(builtins|io)\.open"):
        load_checkpoint(evil)
    assert not marker.exists()
    rc, _, err = cli(capsys, "generate", "--checkpoint", evil, "--per-class", "1", "--out", tmp_path / "g")
    assert_one_line_error(rc, err, "refused to load")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    evil.rename(run / "checkpoints" / "step-0000001.pt")
    assert load_latest_valid(run, warn=lambda s: None) is None  # --resume skips it too
    assert not marker.exists()
    # The test means something: loaded unsafely, the same file does run the payload.
    torch.load(run / "checkpoints" / "step-0000001.pt", weights_only=False)
    assert marker.exists()


def test_plain_pickle_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    path.write_bytes(pickle.dumps({"format": FORMAT}))
    with pytest.raises(CheckpointError, match="not a PyTorch zip archive"):
        load_checkpoint(path)


# ---------------------------------------------------------------- atomic writes, pruning, disk full


def test_atomic_write_never_leaves_half_files(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    target.write_bytes(b"old content")

    def half_then_crash(f: io.BufferedWriter) -> None:
        f.write(b"new con")
        raise KeyboardInterrupt  # a Ctrl-C (or any crash) in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_crash)
    assert target.read_bytes() == b"old content" and no_temp_files(tmp_path) == []

    def disk_full(f: io.BufferedWriter) -> None:
        f.write(b"new con")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(VaemsganError, match=r"f\.bin: could not write \(No space left on device\); nothing"):
        atomic_write(target, disk_full)
    assert target.read_bytes() == b"old content" and no_temp_files(tmp_path) == []
    atomic_write(tmp_path / "new" / "g.bin", lambda f: f.write(b"ok"))
    assert (tmp_path / "new" / "g.bin").read_bytes() == b"ok"


def test_disk_full_while_saving_keeps_previous_checkpoint(
    tmp_path: Path, capsys, data: Path, monkeypatch
) -> None:
    run = tmp_path / "run"
    rc, _, err = cli(capsys, "train", "--data", data, "--out", run, "--steps", "2", *TINY)
    assert rc == 0, err
    before = list_checkpoints(run)
    blobs = {p: p.read_bytes() for p in before}

    def full_disk(path: Path, obj: object) -> Path:
        def write(f: io.BufferedWriter) -> None:
            f.write(b"PK\x03\x04" + b"\0" * 1000)  # the first bytes make it to disk, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

        return io_mod.atomic_write(path, write)

    monkeypatch.setattr(ckpt_mod, "atomic_torch_save", full_disk)
    rc, _, err = cli(capsys, "train", "--out", run, "--resume", "--steps", "4", *TINY)
    assert_one_line_error(
        rc, err, "step-0000004.pt: could not write (No space left on device)", "nothing was"
    )
    assert list_checkpoints(run) == before and all(p.read_bytes() == b for p, b in blobs.items())
    assert load_checkpoint(before[-1])["step"] == 2
    assert no_temp_files(run) == []


def test_write_error_outside_checkpoints_is_one_line(capsys, monkeypatch) -> None:
    def fail(args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "runs/x/metrics.jsonl")

    monkeypatch.setattr(commands, "cmd_presets", fail)
    rc, _, err = cli(capsys, "presets")
    assert_one_line_error(rc, err, "runs/x/metrics.jsonl: No space left on device")


def test_pruning_keeps_newest_and_removes_stale_temp_files(tmp_path: Path) -> None:
    state = {"config": {}, "class_names": ["a"], "models": {"g": {"w": torch.ones(2)}}, "step": 0}
    (tmp_path / "checkpoints").mkdir()
    stale = tmp_path / "checkpoints" / ".step-0000009.pt.abc123.tmp"  # a write killed half-way
    stale.write_bytes(b"PK")
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, {**state, "step": step}, step, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-0000003.pt", "step-0000004.pt"]
    assert not stale.exists()
    save_checkpoint(tmp_path, {**state, "step": 2}, 2, keep=2)  # after a rollback: an older step number
    assert (tmp_path / "checkpoints" / "step-0000002.pt").is_file()  # the new file is never pruned


def test_nan_checkpoint_is_never_written(tmp_path: Path) -> None:
    state = {"config": {}, "class_names": ["a"], "models": {"g": {"w": torch.tensor([1.0, float("nan")])}},
             "step": 1}  # fmt: skip
    with pytest.raises(CheckpointError, match=r"refusing to write a checkpoint at step 1: NaN/Inf values in "
                       r"models\.g\.w"):  # fmt: skip
        save_checkpoint(tmp_path, state, 1, keep=3)
    assert list_checkpoints(tmp_path) == [] and no_temp_files(tmp_path) == []
    assert non_finite_tensors({"a": [torch.ones(1), {"b": torch.tensor([float("inf")])}]}) == ["a[1].b"]
    assert non_finite_tensors({"rng": {"torch": torch.zeros(3, dtype=torch.uint8)}, "n": 3}) == []


def test_metrics_log_trimmed_on_resume(tmp_path: Path) -> None:
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 5}\n{"step": 10}\n{"step": 15}\n{"step": 2')  # killed mid-line
    trim_jsonl(log, 10)
    assert log.read_text() == '{"step": 5}\n{"step": 10}\n'


# ---------------------------------------------------------------- NaN / Inf: skip, rollback, stop


def _nan_grads_on(tr: Trainer, start_step: int, count: int | None) -> None:
    """From `start_step` on, the critic's head gets NaN gradients for `count` backward passes (None: always).

    The losses stay finite: only the gradient check can catch this."""
    left = [count]
    head = tr.nets.critic.critics[0].head.weight

    def hook(g: torch.Tensor) -> torch.Tensor:
        if tr.state.step < start_step or left[0] == 0:
            return g
        if left[0] is not None:
            left[0] -= 1
        return g * float("nan")

    head.register_hook(hook)


def test_nan_gradient_with_finite_loss_skips_the_update(tmp_path: Path, tiny_config, tiny_images) -> None:
    logs: list[str] = []
    tr = Trainer(tiny_config(), tiny_images, tmp_path, progress=False, log=logs.append)
    _nan_grads_on(tr, 0, 1)
    # Parameters only: BatchNorm running statistics move in any forward pass, skipped or not.
    before = {k: v.clone() for k, v in tr.nets.critic.named_parameters()}
    x, y = tr.next_batch()
    tr.critic_step(x, y)
    after = dict(tr.nets.critic.named_parameters())
    assert tr._step_skipped
    assert all(torch.equal(before[k], after[k]) for k in before)  # skipped: weights and Adam state unchanged
    assert not tr.opt_d.state
    tr._step_skipped = False
    tr.critic_step(*tr.next_batch())
    assert not tr._step_skipped and tr.opt_d.state  # the next, finite step updates as usual


def test_nan_rolls_back_with_lower_learning_rate_and_recovers(
    tmp_path: Path, tiny_config, tiny_images
) -> None:
    cfg = tiny_config(train={"checkpoint_every": 5, "nan_patience": 3, "nan_rollbacks": 2})
    logs: list[str] = []
    tr = Trainer(cfg, tiny_images, tmp_path, progress=False, log=logs.append)
    _nan_grads_on(tr, 7, 3)  # steps 8, 9, 10 are bad: rollback to the checkpoint of step 5
    tr.train(15)
    assert tr.state.step == 15 and tr.state.rollbacks == 1
    text = "\n".join(logs)
    assert (
        "update skipped (1 in a row" in text and "rolled back to step 5 with the learning rates x0.5" in text
    )
    for path in list_checkpoints(tmp_path):
        assert non_finite_tensors(load_checkpoint(path)) == [], path
    final = load_checkpoint(list_checkpoints(tmp_path)[-1])
    lrs = {k: o["param_groups"][0]["lr"] for k, o in final["optimizers"].items()}
    assert lrs == {
        "generator": cfg.train.lr_g / 2,
        "critic": cfg.train.lr_d / 2,
        "encoder": cfg.train.lr_e / 2,
    }
    assert final["nan_rollbacks"] == 1
    # The rollback reloaded step 5 exactly, so the saved step-5 file is the rollback target.
    assert load_checkpoint(tmp_path / "checkpoints" / "step-0000005.pt")["nan_rollbacks"] == 0


def test_nan_stops_after_max_rollbacks_with_diagnosis(tmp_path: Path, tiny_config, tiny_images) -> None:
    cfg = tiny_config(train={"checkpoint_every": 2, "nan_patience": 2, "nan_rollbacks": 2})
    logs: list[str] = []
    tr = Trainer(cfg, tiny_images, tmp_path, progress=False, log=logs.append)
    _nan_grads_on(tr, 3, None)  # every step after 3 diverges
    with pytest.raises(
        NonFiniteLossError, match=r"diverged at step \d+: 2 consecutive steps .*after 2 rollback"
    ):
        tr.train(20)
    assert sum("rolled back" in line for line in logs) == 2
    saved = [load_checkpoint(p) for p in list_checkpoints(tmp_path)]
    assert saved and all(non_finite_tensors(s) == [] and s["step"] <= 4 for s in saved)


def test_nan_weights_at_save_roll_back_instead_of_writing(tmp_path: Path, tiny_config, tiny_images) -> None:
    logs: list[str] = []
    tr = Trainer(tiny_config(), tiny_images, tmp_path, progress=False, log=logs.append)
    tr.train(10)  # checkpoint at 10: the last good state
    with torch.no_grad():
        next(tr.nets.generator.parameters()).fill_(float("inf"))  # e.g. an overflowing BatchNorm statistic
    tr.state.step = 12
    tr.save()
    assert "NaN/Inf in the weights (models.generator." in "\n".join(logs)
    assert tr.state.step == 10 and non_finite_tensors(tr.state_dict()) == []
    assert all(non_finite_tensors(load_checkpoint(p)) == [] for p in list_checkpoints(tmp_path))


def test_nan_cli_exit_is_one_line(tmp_path: Path, capsys, data: Path, monkeypatch) -> None:
    from vaemsgan import losses

    monkeypatch.setattr(losses, "critic_loss", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True))
    rc, out, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "run", "--steps", "50", *TINY,
                       "--set", "train.nan_patience=2", "--set", "train.nan_rollbacks=1")  # fmt: skip
    assert_one_line_error(
        rc, err, "training diverged at step", "Lower the learning rates", "no NaN checkpoint"
    )
    assert "rolled back to step 0" in out
    assert list_checkpoints(tmp_path / "run") == []


# ---------------------------------------------------------------- interruptions


def test_sigint_finishes_step_saves_and_says_how_to_resume(tmp_path: Path, tiny_config, tiny_images) -> None:
    logs: list[str] = []
    cfg = tiny_config(train={"checkpoint_every": 100})
    tr = Trainer(cfg, tiny_images, tmp_path, progress=False, log=logs.append)
    real = tr.generator_step

    def step_then_ctrl_c(x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        out = real(x, y)
        if tr.state.step == 3:  # Ctrl-C during step 4: the step is finished first
            os.kill(os.getpid(), signal.SIGINT)
        return out

    tr.generator_step = step_then_ctrl_c  # type: ignore[method-assign]
    before = signal.getsignal(signal.SIGINT)
    tr.train(50)
    assert tr.state.step == 4
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-0000004.pt"]
    assert "continue with the same command and --resume" in logs[-1]
    assert signal.getsignal(signal.SIGINT) is before  # handlers restored


def test_sigterm_via_cli_saves_exits_zero_and_resumes(tmp_path: Path, data: Path) -> None:
    run = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(data),
        "--out",
        str(run),
        "--steps",
        "100000",
        "--checkpoint-every",
        "3",
        *TINY,
    ]
    proc = subprocess.Popen([sys.executable, "-m", "vaemsgan", *args], cwd=tmp_path, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for(lambda: bool(list_checkpoints(run)), proc, "the first checkpoint")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    m = re.search(
        r"stopped at step (\d+): checkpoint saved; continue with the same command and --resume", out
    )
    assert m, out + err
    step = int(m.group(1))
    assert load_checkpoint(list_checkpoints(run)[-1])["step"] == step
    done = run_cli(["train", "--out", str(run), "--resume", "--steps", str(step + 2), *TINY], tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"resumed from {run / 'checkpoints' / f'step-{step:07d}.pt'}" in done.stdout
    assert load_checkpoint(list_checkpoints(run)[-1])["step"] == step + 2


def test_sigkill_then_resume_skips_corrupt_checkpoint_and_matches_uninterrupted(
    tmp_path: Path, capsys, data: Path
) -> None:
    """SIGKILL at an arbitrary moment; the newest checkpoint is then damaged and a half-written temp file
    left beside it. --resume warns, continues from the newest valid one and ends with exactly the weights
    of a run that was never interrupted (deterministic CPU mode)."""
    run = tmp_path / "run"
    args = ["--data", str(data), "--checkpoint-every", "2", "--keep", "3", *TINY]
    proc = subprocess.Popen([sys.executable, "-m", "vaemsgan", "train", "--out", str(run), "--steps", "100000",
                             *args], cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    wait_for(lambda: len(list_checkpoints(run)) >= 2, proc, "two checkpoints")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    found = list_checkpoints(run)
    newest, valid = found[-1], found[-2]
    newest.write_bytes(newest.read_bytes()[:1000])  # as if the disk lost the end of it
    (run / "checkpoints" / ".step-9999999.pt.x1y2.tmp").write_bytes(b"PK\x03\x04 half")
    step = load_checkpoint(valid)["step"]
    target = step + 3

    done = run_cli(["train", "--out", str(run), "--resume", "--steps", str(target), *TINY], tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"warning: skipping {newest}: not a vaemsgan checkpoint" in done.stdout
    assert f"resumed from {valid} at step {step}" in done.stdout
    assert not list((run / "checkpoints").glob("*.tmp"))
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == sorted({r["step"] for r in records})  # no repeated steps

    rc, _, err = cli(capsys, "train", "--out", tmp_path / "straight", "--steps", target, *args)
    assert rc == 0, err
    resumed, straight = (
        model_weights(list_checkpoints(run)[-1]),
        model_weights(list_checkpoints(tmp_path / "straight")[-1]),
    )
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in resumed)


# ---------------------------------------------------------------- generation: resume per file


def test_interrupted_generation_resumes_to_identical_files(
    tmp_path: Path, trained_run: Path, monkeypatch
) -> None:
    model = load_model(trained_run, "cpu")
    ref = generate_folder(model, tmp_path / "ref", 5, seed=3, batch_size=2, progress=False)
    ref_files = {f["file"]: (tmp_path / "ref" / f["file"]).read_bytes() for f in ref["files"]}

    real, written = sampler.save_png, []

    def crash_after_three(path: Path, image: np.ndarray, fsync: bool = True) -> Path:
        if len(written) == 3:
            raise KeyboardInterrupt  # the user pressed Ctrl-C (or the machine went down)
        written.append(path)
        return real(path, image, fsync=fsync)

    monkeypatch.setattr(sampler, "save_png", crash_after_three)
    out = tmp_path / "gen"
    with pytest.raises(KeyboardInterrupt):
        generate_folder(model, out, 5, seed=3, batch_size=2, progress=False)
    assert not (out / "manifest.json").exists() and no_temp_files(out) == []
    assert len(list(out.rglob("*.png"))) == 3
    with pytest.raises(OutputExistsError, match="--resume"):
        generate_folder(model, out, 5, seed=3, batch_size=2, progress=False)
    with pytest.raises(OutputExistsError, match="other settings"):
        generate_folder(model, out, 5, seed=4, batch_size=2, progress=False, resume=True)

    written.clear()
    monkeypatch.setattr(sampler, "save_png", lambda p, a, fsync=True: written.append(p) or real(p, a, fsync))
    manifest = generate_folder(model, out, 5, seed=3, batch_size=2, progress=False, resume=True)
    assert len(written) == len(ref_files) - 3  # only the missing files were made
    assert {f["file"]: (out / f["file"]).read_bytes() for f in manifest["files"]} == ref_files
    assert not (out / ".generate-partial.json").exists() and no_temp_files(out) == []
    again = generate_folder(model, out, 5, seed=3, batch_size=2, progress=False, resume=True)
    assert again["files"] == manifest["files"]  # resuming a finished folder is a no-op


def test_generate_cli_resume(tmp_path: Path, capsys, trained_run: Path, monkeypatch) -> None:
    out = tmp_path / "g"
    base = ["generate", "--checkpoint", trained_run, "--per-class", "3", "--out", out, "--no-progress", "--device",
            "cpu"]  # fmt: skip
    assert cli(capsys, *base, "--out", tmp_path / "ref")[0] == 0
    real, calls = sampler.save_png, []

    def ctrl_c_after_two(path: Path, image: np.ndarray, fsync: bool = True) -> Path:
        calls.append(path)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return real(path, image, fsync=fsync)

    monkeypatch.setattr(sampler, "save_png", ctrl_c_after_two)
    rc, _, err = cli(capsys, *base)
    assert rc == 130 and err.strip() == (
        "vaemsgan: generation interrupted: the images written so far are complete; "
        "continue with the same command and --resume"
    )
    monkeypatch.setattr(sampler, "save_png", real)
    rc, _, err = cli(capsys, *base)
    assert_one_line_error(rc, err, "--resume to finish an interrupted generation")
    rc, _, err = cli(capsys, *base, "--resume")
    assert rc == 0, err
    made = {p.relative_to(out): p.read_bytes() for p in out.rglob("*.png")}
    ref = {p.relative_to(tmp_path / "ref"): p.read_bytes() for p in (tmp_path / "ref").rglob("*.png")}
    assert made == ref and len(made) == 6
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("mine")
    rc, _, err = cli(capsys, *base, "--out", tmp_path / "other", "--resume")
    assert_one_line_error(rc, err, "nothing to resume")


# ---------------------------------------------------------------- security: paths, network


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cat", "cat"),
        ("..", "_"),
        ("../../etc", "_.._etc"),
        ("/etc/passwd", "_etc_passwd"),
        ("a/b", "a_b"),
        ("a\\b", "a_b"),
        (".hidden", "hidden"),
        ("", "_"),
        ("nul\x00byte", "nul_byte"),
        ("star*?<>|:", "star______"),
        ("tabby cat. ", "tabby cat"),
        ("猫", "猫"),
        ("x" * 300, "x" * 100),
    ],
)
def test_safe_name(name: str, expected: str) -> None:
    assert safe_name(name) == expected


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_safe_name_property_stays_inside_folder(name: str) -> None:
    s = safe_name(name)
    assert s and s not in (".", "..") and not s.startswith(".") and len(s) <= 100
    assert not any(c in s for c in "/\\\x00") and s == s.strip()
    base = Path("/srv/out")
    assert (base / s).parent == base and os.path.normpath(base / s).startswith("/srv/out/")


def test_safe_names_are_distinct() -> None:
    folders = safe_names(["a/b", "a_b", "A_B", "..", "."])
    assert len({f.lower() for f in folders.values()}) == 5
    assert folders["a/b"] == "a_b" and folders["a_b"] == "a_b-2"


def test_generate_writes_only_inside_out(tmp_path: Path, trained_run: Path) -> None:
    model = load_model(trained_run, "cpu")
    model.class_names = ["../../escape", "/tmp/abs"]  # hostile folder names from someone's data set
    out = tmp_path / "a" / "b" / "out"
    manifest = generate_folder(model, out, 2, progress=False)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and all(out in p.parents for p in files), files
    assert manifest["class_folders"] == {"../../escape": "_.._escape", "/tmp/abs": "_tmp_abs"}
    assert not (tmp_path / "escape").exists()


NETWORK_MODULES = (
    "socket",
    "urllib",
    "http",
    "requests",
    "httpx",
    "aiohttp",
    "ftplib",
    "smtplib",
    "websocket",
)


def test_package_has_no_network_code() -> None:
    src = Path(vaemsgan.__file__).parent
    pattern = re.compile(
        rf"^\s*(import|from)\s+({'|'.join(NETWORK_MODULES)})\b|torch\.hub|urlopen|download_url", re.M
    )
    hits = [f"{p}:{m.group(0)}" for p in src.rglob("*.py") for m in pattern.finditer(p.read_text())]
    assert hits == []


def test_train_and_generate_work_with_network_blocked(
    tmp_path: Path, capsys, data: Path, monkeypatch
) -> None:
    def no_network(*a, **k):
        raise AssertionError("vaemsgan tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    rc, _, err = cli(capsys, "train", "--data", data, "--out", tmp_path / "run", "--steps", "2", *TINY)
    assert rc == 0, err
    rc, _, err = cli(capsys, "generate", "--checkpoint", tmp_path / "run", "--per-class", "2",
                     "--out", tmp_path / "gen", "--no-progress", "--device", "cpu")  # fmt: skip
    assert rc == 0, err


# ---------------------------------------------------------------- config parser properties

_FIELDS = {s: [f.name for f in __import__("dataclasses").fields(getattr(Config(), s))] for s in SECTIONS}
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.lists(st.one_of(st.integers(-10, 10), st.text(max_size=4)), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
_keys = st.one_of(*[st.sampled_from(v) for v in _FIELDS.values()], st.text(max_size=8))
_sections = st.dictionaries(
    st.one_of(
        st.sampled_from(SECTIONS), st.text(max_size=8), st.integers(), st.sampled_from(["preset", "version"])
    ),
    st.one_of(st.dictionaries(st.one_of(_keys, st.integers()), _values, max_size=4), _values),
    max_size=4,
)


@given(_sections)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_config_parser_property_valid_or_config_error(raw: dict) -> None:
    """Any mapping gives a valid Config or a ConfigError naming a key; never another exception."""
    try:
        cfg = Config.from_dict(raw)
    except ConfigError as exc:
        assert str(exc)
        return
    assert Config.from_yaml(cfg.to_yaml()) == cfg  # what was accepted round-trips


@pytest.mark.parametrize("text", ["2001-13-01", "a: 2001-02-30", "!!int abc", "!!timestamp x", "1: 2"])
def test_yaml_parser_impossible_values(text: str) -> None:
    with pytest.raises(ConfigError):
        Config.from_yaml(text)


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_yaml_parser_property(text: str) -> None:
    try:
        d = parse_yaml(text)
    except ConfigError:
        return
    assert isinstance(d, dict)


def test_atomic_write_gives_ordinary_file_permissions(tmp_path: Path) -> None:
    import os
    import stat

    from vaemsgan.utils.io import atomic_write_text

    path = atomic_write_text(tmp_path / "report.html", "<html></html>")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
