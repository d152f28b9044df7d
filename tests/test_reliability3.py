"""Reliability round 3 (issue 24), family 5: a verdict that cannot be true. The same images on both sides of
`evaluate` are refused; a judge at chance is reported as failed, never as praise; skipped files are counted."""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from vaemsgan.cli.main import main
from vaemsgan.evaluation.inputs import load_generated_dir, note_skipped
from vaemsgan.evaluation.report_verdict import judge_failed, verdict


def _folder(root, classes=("a", "b"), n=4, size=16):
    rng = np.random.default_rng(0)
    for k, c in enumerate(classes):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = np.clip(rng.normal(60 + 100 * k, 20, (size, size)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(root / c / f"{i}.png")
    return root


def _one_line_error(capsys, argv: list[str], *needles: str) -> None:
    assert main(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    for n in needles:
        assert n in err[0], err[0]


def test_the_same_folder_on_both_sides_is_refused(tmp_path, capsys) -> None:
    real = _folder(tmp_path / "real")
    out = str(tmp_path / "report")
    _one_line_error(
        capsys, ["evaluate", "--generated", str(real), "--real", str(real), "--out", out], "same folder"
    )
    os.symlink(real, tmp_path / "alias")  # the same folder by another name
    _one_line_error(
        capsys,
        ["evaluate", "--generated", str(tmp_path / "alias"), "--real", str(real), "--out", out],
        "same folder",
    )
    inner = _folder(real / "synthetic" / "x", classes=("a",))  # generated images kept inside the real folder
    _one_line_error(
        capsys, ["evaluate", "--generated", str(inner.parent), "--real", str(real), "--out", out], "is inside"
    )
    assert not (tmp_path / "report").exists()


def test_generated_files_that_are_real_files_are_refused(tmp_path, capsys) -> None:
    real = _folder(tmp_path / "real")
    gen = tmp_path / "gen"
    gen.mkdir()
    os.symlink(real / "a", gen / "a")  # a class folder linked to the real one
    _folder(gen, classes=("b",))
    argv = ["evaluate", "--generated", str(gen), "--real", str(real), "--out", str(tmp_path / "r"), "--quick"]
    _one_line_error(capsys, [*argv, "--no-progress"], "also real images")


def test_a_judge_at_chance_is_reported_as_failed_not_praised() -> None:
    def result(trtr: float, tstr: float, trts: float, n: int) -> dict:
        table = {k: {"mean": v} for k, v in (("TRTR", trtr), ("TSTR", tstr), ("TRTS", trts))}
        return {"classes": [f"c{i}" for i in range(n)], "classifier": {"table": table}}

    text = " ".join(verdict(result(0.11, 0.10, 0.12, 10))["overall"])
    assert "judge itself failed" in text and "almost like real" not in text
    text = " ".join(verdict(result(0.52, 0.50, 0.51, 2))["overall"])  # 2 classes: 0.5 is chance
    assert "judge itself failed" in text and "almost like real" not in text
    text = " ".join(verdict(result(0.90, 0.88, 0.87, 10))["overall"])
    assert "judge itself failed" not in text and "almost like real" in text
    assert judge_failed(0.19, 10) and not judge_failed(0.25, 10) and not judge_failed(0.3, 1)


def test_skipped_generated_files_are_counted_in_one_line(tmp_path, capsys) -> None:
    gen = _folder(tmp_path / "gen")
    (gen / "a" / "broken.png").write_bytes(b"not a png")
    s = load_generated_dir(gen, 16, 1)
    note_skipped("generated", s)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "skipped 1 unreadable" in err[0] and "broken.png" in err[0]


# ------------------------------------------------------------------ family 4: options a resume cannot honour
TINY_TRAIN = ["--resolution", "16", "--batch-size", "4", "--g-width", "4", "--d-width", "4", "--latent-dim", "8",
              "--set", "model.e_width=4", "--no-progress"]  # fmt: skip


def test_resume_refuses_another_preset_and_names_what_it_ignores(tmp_path, capsys) -> None:
    data = _folder(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--steps", "2", *TINY_TRAIN]) == 0
    capsys.readouterr()
    _one_line_error(
        capsys, ["train", "--out", str(run), "--resume", "--preset", "paper", "--steps", "3"], "'default' run"
    )
    argv = ["train", "--out", str(run), "--resume", "--steps", "3", "--threads", "1", "--preset", "default"]
    argv += ["--lr-g", "1e-3", "--set", "loss.kl_weight=0.5", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    note = next(line for line in out.splitlines() if "ignoring" in line)
    assert "train.lr_g" in note and "--set loss.kl_weight" in note and "threads" not in note
    assert "--threads 1" in out  # honoured, and said


# ------------------------------------------------------------------ family 1: one owner per folder
def _wait_for(cond, timeout: float = 120.0) -> None:
    import time

    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "timed out"
        time.sleep(0.2)


def test_two_trains_on_one_run_folder_one_is_refused_and_the_run_stays_resumable(tmp_path, capsys) -> None:
    import subprocess
    import sys

    from vaemsgan.checkpoint import list_checkpoints, load_checkpoint

    data = _folder(tmp_path / "data")
    run = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "vaemsgan", "train", "--data", str(data), "--out", str(run), "--steps", "100000",
         "--checkpoint-every", "2", "--threads", "1", *TINY_TRAIN],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(lambda: len(list_checkpoints(run)) >= 1)
        second = [
            "train",
            "--data",
            str(data),
            "--out",
            str(run),
            "--steps",
            "2",
            "--force",
            "--latent-dim",
            "16",
        ]
        _one_line_error(capsys, second, "in use by another vaemsgan process", f"PID {first.pid}")
        _one_line_error(capsys, ["train", "--out", str(run), "--resume", "--steps", "3"], f"PID {first.pid}")
    finally:
        first.kill()  # kill -9: the kernel drops the lock with the process, nothing stale is left
        first.wait()
    newest = max(list_checkpoints(run))
    step = int(load_checkpoint(newest)["step"])
    assert load_checkpoint(newest)["config"]["model"]["latent_dim"] == 8  # the first run's networks, intact
    assert main(["train", "--out", str(run), "--resume", "--steps", str(step + 2), "--no-progress"]) == 0


def test_a_generate_folder_in_use_is_refused(tmp_path, capsys) -> None:
    import subprocess
    import sys

    out = tmp_path / "gen"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from vaemsgan.utils.lock import folder_lock\n"
         "with folder_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)", str(out)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        argv = [
            "generate",
            "--checkpoint",
            str(tmp_path / "none"),
            "--per-class",
            "2",
            "--out",
            str(out),
            "--force",
        ]
        _one_line_error(capsys, argv, "in use", f"PID {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    from vaemsgan.utils.lock import folder_lock

    with folder_lock(out):  # free again once its holder died
        pass


# ------------------------------------------------------------------ family 3: classes that are the same class
NFC, NFD = "caf\u00e9", "cafe\u0301"


def test_nfc_nfd_twins_and_linked_class_folders_are_refused_everywhere(tmp_path, capsys) -> None:
    from vaemsgan.data.check import check_data

    twins = _folder(tmp_path / "twins", classes=(NFC, NFD, "tea"))
    report = check_data(str(twins))
    assert not report.ok and any("two Unicode spellings" in p for p in report.problems)
    out = str(tmp_path / "run")
    _one_line_error(
        capsys, ["train", "--data", str(twins), "--out", out, "--steps", "1", *TINY_TRAIN], "NFC and NFD"
    )
    linked = _folder(tmp_path / "linked", classes=("tank", "truck"))
    os.symlink(linked / "tank", linked / "tank2")
    assert any("is a link to class folder 'tank'" in p for p in check_data(str(linked)).problems)
    _one_line_error(
        capsys, ["train", "--data", str(linked), "--out", out, "--steps", "1", *TINY_TRAIN], "'tank2'"
    )
    assert not (tmp_path / "run").exists()


def test_generated_class_folders_keep_the_data_sets_spelling(tmp_path) -> None:
    data = _folder(tmp_path / "data", classes=(NFD, "tea"))  # an NFD name, as macOS writes them
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--steps", "1", *TINY_TRAIN]) == 0
    gen = tmp_path / "gen"
    assert (
        main(["generate", "--checkpoint", str(run), "--per-class", "1", "--out", str(gen), "--no-progress"])
        == 0
    )
    names = sorted(p.name for p in gen.iterdir() if p.is_dir())
    assert names == sorted([NFD, "tea"]) and NFC not in names  # byte-equal to the real folder: merges line up


# ------------------------------------------------------------------ family 6: memory at high resolution
def test_the_256px_mini_set_loads_within_twice_its_uint8_size() -> None:
    import json
    import subprocess
    import sys

    code = (
        "import json, resource\n"
        "from vaemsgan.data import load_images\n"
        "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "base = peak()\n"
        "s = load_images('fashion-mnist-mini', resolution=256, channels=3)\n"
        "print(json.dumps({'over': peak() - base, 'data': s.images.numel(), 'dtype': str(s.images.dtype)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    m = json.loads(done.stdout.strip().splitlines()[-1])
    assert m["dtype"] == "torch.uint8" and m["data"] == 2000 * 3 * 256 * 256
    assert m["over"] <= 2 * m["data"], m


def test_no_grad_generator_calls_shrink_with_the_resolution() -> None:
    from vaemsgan.models.layers import inference_batch

    assert [inference_batch(r) for r in (16, 32, 64, 128, 256)] == [256, 256, 64, 16, 8]


def test_training_at_256px_stays_near_its_data_size(tmp_path) -> None:
    """One step at 256 px RGB, batch 2, with its sample grid and checkpoint: the BatchNorm recalibration once
    pushed 256 latents at a time through the generator (3 GB; 4.9x the data set)."""
    import json
    import subprocess
    import sys

    code = (
        "import json, resource, sys, torch\n"
        "torch.set_num_threads(1)\n"
        "from vaemsgan.data import load_images\n"
        "from vaemsgan.presets import build_config\n"
        "from vaemsgan.training.trainer import Trainer\n"
        "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "base = peak()\n"
        "s = load_images('fashion-mnist-mini', resolution=256, channels=3)\n"
        "cfg = build_config('default', {'data.resolution': 256, 'data.channels': 3, 'train.batch_size': 2,"
        " 'train.steps': 1})\n"
        "Trainer(cfg, s, sys.argv[1], progress=False, log=lambda m: None).train(1)\n"
        "print(json.dumps({'over': peak() - base, 'data': s.images.numel()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )  # the run (its 74 MB of checkpoints) goes to pytest's tmp_path, not to a /tmp folder left behind
    m = json.loads(done.stdout.strip().splitlines()[-1])
    assert m["over"] <= 3 * m["data"], m


# ------------------------------------------------------------------ family 2: --force leaves exactly the manifest
def _tiny_run(tmp_path):
    data = _folder(tmp_path / "data")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--steps", "1", *TINY_TRAIN]) == 0
    return run


def _files(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def test_force_leaves_exactly_what_the_manifest_says(tmp_path, capsys) -> None:
    import json

    run = _tiny_run(tmp_path)
    gen = tmp_path / "gen"
    base = ["generate", "--checkpoint", str(run), "--out", str(gen), "--no-progress"]
    assert main([*base, "--per-class", "5"]) == 0
    assert main([*base, "--per-class", "2", "--force"]) == 0
    manifest = json.loads((gen / "manifest.json").read_text())
    want = sorted([f"{c}/{i:06d}.png" for c in ("a", "b") for i in range(2)] + ["manifest.json"])
    assert _files(gen) == want and manifest["per_class"] == 2
    # A user's own file in the folder: --force refuses and touches nothing.
    (gen / "a" / "my_photo.png").write_bytes(b"mine")
    (gen / "notes.txt").write_text("mine")
    before = _files(gen)
    capsys.readouterr()
    _one_line_error(capsys, [*base, "--per-class", "3", "--force"], "did not write", "--force replaces only")
    assert _files(gen) == before and (gen / "a" / "my_photo.png").read_bytes() == b"mine"
    # A folder of the user's (no manifest): refused with --force too, nothing overwritten.
    mine = tmp_path / "mine"
    (mine / "a").mkdir(parents=True)
    (mine / "a" / "000000.png").write_bytes(b"not ours")
    _one_line_error(capsys, ["generate", "--checkpoint", str(run), "--out", str(mine), "--per-class", "1",
                             "--force", "--no-progress"], "did not write")  # fmt: skip
    assert (mine / "a" / "000000.png").read_bytes() == b"not ours"


def test_force_on_reports_reconstructions_and_the_demo_replaces_only_their_own_files(
    tmp_path, capsys
) -> None:
    from vaemsgan.evaluation.evaluate import clear_earlier_report

    report = tmp_path / "report"
    report.mkdir()
    for name in ("report.html", "metrics.json", "augmentation_gain.png"):
        (report / name).write_text("old")
    clear_earlier_report(report)
    assert list(report.iterdir()) == []  # an old gain plot does not outlive a report without one
    (report / "my_notes.txt").write_text("mine")
    import pytest

    from vaemsgan.errors import OutputExistsError

    with pytest.raises(OutputExistsError, match="did not write"):
        clear_earlier_report(report)
    assert (report / "my_notes.txt").read_text() == "mine"
    # reconstruct --force: its manifest names what it wrote.
    run = _tiny_run(tmp_path)
    src = _folder(tmp_path / "src", n=2)
    rec = tmp_path / "rec"
    base = ["reconstruct", "--checkpoint", str(run), "--input", str(src), "--out", str(rec)]
    assert main(base) == 0
    assert main([*base, "--force"]) == 0
    assert _files(rec) == sorted(
        [f"{c}/{i}.png" for c in ("a", "b") for i in range(2)] + ["reconstruct.json"]
    )
    (rec / "a" / "mine.png").write_bytes(b"mine")
    capsys.readouterr()
    _one_line_error(capsys, [*base, "--force"], "did not write")
    assert (rec / "a" / "mine.png").read_bytes() == b"mine"
    # demo --force: its run/ must be a vaemsgan run.
    demo = tmp_path / "demo"
    (demo / "run").mkdir(parents=True)
    (demo / "run" / "thesis.tex").write_text("mine")
    _one_line_error(
        capsys, ["demo", "--out", str(demo), "--force", "--steps", "1", "--no-progress"], "not a vaemsgan run"
    )
    assert (demo / "run" / "thesis.tex").read_text() == "mine"
