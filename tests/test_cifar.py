"""The RGB path on real colour photographs (issue 25): a tiny run trains, generates and is evaluated on a few
CIFAR-10 JPEGs from ../shared/data/cifar10 (skipped with a reason where that folder is absent). The numbers
of so small a run mean nothing; what is checked is that colour survives every step end to end."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vaemsgan.cli.main import main

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
CLASSES = ("airplane", "frog", "truck")  # a blue-sky, a green and a mixed class


def _subset(out: Path, per_class: dict[str, int]) -> Path:
    for split, n in per_class.items():
        for c in CLASSES:
            (out / split / c).mkdir(parents=True)
            for f in sorted((CIFAR / split / c).glob("*.jpg"))[:n]:
                shutil.copy(f, out / split / c / f.name)
    return out


@pytest.mark.skipif(
    not (CIFAR / "train").is_dir(),
    reason=f"CIFAR-10 not found at {CIFAR} (put the train/ and test/ class folders of ../shared/data/cifar10 there)",
)
def test_train_generate_evaluate_on_real_cifar10_images(tmp_path) -> None:
    data = _subset(tmp_path / "cifar", {"train": 16, "test": 8})
    run, gen, rep = tmp_path / "run", tmp_path / "gen", tmp_path / "report"
    tiny = ["--set", "model.g_width=8", "--set", "model.d_width=8", "--set", "model.e_width=8"]
    argv = ["train", "--data", str(data), "--out", str(run), "--channels", "3", "--resolution", "32"]
    assert main([*argv, "--steps", "6", "--batch-size", "8", "--threads", "1", "--no-progress", *tiny]) == 0
    grid = Image.open(run / "samples.png")
    assert grid.mode == "RGB"
    px = np.asarray(grid, dtype=np.int16)
    assert np.abs(px[..., 0] - px[..., 1]).max() > 0  # colour, not grey in three channels

    assert (
        main(["generate", "--checkpoint", str(run), "--per-class", "8", "--out", str(gen), "--no-progress"])
        == 0
    )
    files = sorted(gen.rglob("*.png"))
    assert sorted({f.parent.name for f in files}) == sorted(CLASSES) and len(files) == 24
    first = Image.open(files[0])
    assert first.mode == "RGB" and first.size == (32, 32)

    ev = ["evaluate", "--real", str(data), "--generated", str(gen), "--out", str(rep), "--quick"]
    assert (
        main([*ev, "--classifier-steps", "20", "--domain-steps", "20", "--threads", "1", "--no-progress"])
        == 0
    )
    m = json.loads((rep / "metrics.json").read_text())
    assert m["channels"] == 3 and m["resolution"] == 32
    assert {r["class"] for r in m["stats"]["per_class"]} == set(CLASSES)
    joint = [r for r in m["stats"]["per_class"] if r["statistic"] == "entropy_joint"]
    per_channel = [r for r in m["stats"]["per_class"] if r["statistic"] == "entropy"]
    # Colour images: the entropy of whole RGB pixel values exceeds that of one channel (equal for grey).
    assert all(j["real_mean"] > e["real_mean"] for j, e in zip(joint, per_channel))
    assert (rep / "report.html").stat().st_size > 10_000


@pytest.mark.skipif(
    not (CIFAR / "train").is_dir(),
    reason=f"CIFAR-10 not found at {CIFAR} (put the train/ and test/ class folders of ../shared/data/cifar10 there)",
)
def test_augmentation_gain_and_the_python_api_keep_colour(tmp_path) -> None:
    from vaemsgan import api

    data = _subset(tmp_path / "cifar", {"train": 12, "test": 6})
    run, rep = tmp_path / "run", tmp_path / "gain"
    tiny = ["--set", "model.g_width=8", "--set", "model.d_width=8", "--set", "model.e_width=8"]
    argv = ["train", "--data", str(data), "--out", str(run), "--channels", "3", "--resolution", "32"]
    assert main([*argv, "--steps", "4", "--batch-size", "8", "--threads", "1", "--no-progress", *tiny]) == 0

    model = api.load(run)
    assert model.channels == 3 and model.class_names == sorted(CLASSES)
    imgs = model.sample("frog", 4, seed=1)
    assert imgs.shape == (4, 3, 32, 32) and imgs.dtype == torch.uint8
    assert (imgs[:, 0] != imgs[:, 1]).any()  # colour, not grey in three channels
    assert all(p.mode == "RGB" for p in model.sample("frog", 2, as_pil=True))

    ev = ["evaluate", "--real", str(data), "--checkpoint", str(run), "--out", str(rep), "--augmentation-gain"]
    fast = ["--gain-ratios", "1", "--gain-temperatures", "1", "--gain-seeds", "1", "--classifier-steps", "10"]
    cifar = ["--classifier", "cifar", "--domain-steps", "10"]  # the CIFAR judge, shortened for the test
    assert main([*ev, *fast, *cifar, "--threads", "1", "--no-progress"]) == 0
    m = json.loads((rep / "metrics.json").read_text())
    gain = m["augmentation_gain"]
    assert {a["arm"] for a in gain["arms"]} == {"prior", "curated", "variations-T1"}
    assert m["options"]["classifier"]["width"] == 32  # the `cifar` judge's widths, not the small one's
    # Photographs: the baseline is CIFAR's standard augmentation, crops + horizontal flips, no rotation.
    assert gain["n_real_test"] == 18
    assert (gain["policy"]["name"], gain["policy"]["flip"], gain["policy"]["rotate_degrees"]) == (
        "standard",
        True,
        0.0,
    )
    assert 0.0 <= gain["baseline"]["accuracy"]["mean"] <= 1.0
    assert (rep / "augmentation_gain.png").is_file()
