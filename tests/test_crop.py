"""`--crop N`: the centre N x N source pixels before resizing, kept in the config and the checkpoint, and
applied the same way to real images by every reader (evaluate, variations, reconstruct, the API)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vaemsgan.cli.main import main
from vaemsgan.config import Config
from vaemsgan.data import load_images
from vaemsgan.data.check import check_data, crop_preview
from vaemsgan.data.imagefolder import convert_image, crop_box
from vaemsgan.presets import build_config


def test_crop_box_is_centred_and_bounded() -> None:
    assert crop_box(128, 128, 64) == (32.0, 32.0, 96.0, 96.0)
    assert crop_box(128, 128) == (0.0, 0.0, 128.0, 128.0)
    assert crop_box(100, 60, 40) == (30.0, 10.0, 70.0, 50.0)
    assert crop_box(50, 50, 88) == (0.0, 0.0, 50.0, 50.0)  # smaller than the crop: used whole


def test_crop_at_the_training_size_keeps_the_centre_pixels_exactly() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (128, 128), dtype=np.uint8)
    out = convert_image(Image.fromarray(a), 64, 1, crop=64)
    assert out.shape == (1, 64, 64)
    np.testing.assert_array_equal(out[0], a[32:96, 32:96])
    whole = convert_image(Image.fromarray(a), 64, 1)
    assert not np.array_equal(whole[0], a[32:96, 32:96])


@pytest.fixture
def chips(tmp_path):
    """Two classes of 64x64 'chips': a bright centre square on dark clutter."""
    rng = np.random.default_rng(1)
    root = tmp_path / "chips"
    for k, name in enumerate(["tank", "truck"]):
        for split in ("train", "test"):
            (root / split / name).mkdir(parents=True)
            for i in range(6):
                a = rng.integers(0, 40, (64, 64), dtype=np.uint8)
                a[24:40, 24:40] = 150 + 50 * k
                Image.fromarray(a).save(root / split / name / f"{i}.png")
    return root


def test_loaders_apply_the_crop(chips) -> None:
    whole = load_images(str(chips), resolution=16)
    cropped = load_images(str(chips), resolution=16, crop=16)
    # The 16 px crop is the bright target alone; the whole chip resized is mostly clutter.
    assert cropped.images.float().mean() > 2 * whole.images.float().mean()
    assert cropped.images.min() >= 150


def test_crop_lives_in_the_config_and_checkpoint_and_evaluate_uses_it(chips, tmp_path) -> None:
    cfg = build_config("default", {"data.crop": 16})
    assert Config.from_yaml(cfg.to_yaml()).data.crop == 16
    run = tmp_path / "run"
    tiny = [
        "--resolution",
        "16",
        "--batch-size",
        "4",
        "--g-width",
        "4",
        "--d-width",
        "4",
        "--latent-dim",
        "8",
    ]
    tiny += ["--set", "model.e_width=4", "--no-progress", "--threads", "1", "--steps", "2"]
    assert main(["train", "--data", str(chips), "--crop", "16", "--out", str(run), *tiny]) == 0
    from vaemsgan.api import load

    model = load(run)
    assert model.crop == 16
    gen = tmp_path / "gen"
    assert (
        main(["generate", "--checkpoint", str(run), "--per-class", "4", "--out", str(gen), "--no-progress"])
        == 0
    )
    import json

    assert json.loads((gen / "manifest.json").read_text())["crop"] == 16
    from vaemsgan.evaluation.evaluate import EvalOptions
    from vaemsgan.evaluation.inputs import load_real

    train, test, _ = load_real(str(chips), 16, 1, EvalOptions(), crop=model.crop)
    assert train.images.min() >= 150 and test.images.min() >= 150  # the same crop as training
    # The API crops PIL input the same way.
    a = np.zeros((64, 64), dtype=np.uint8)
    a[24:40, 24:40] = 200
    assert int(model.images([Image.fromarray(a)]).min()) == 200


def test_check_data_says_what_a_crop_keeps(chips) -> None:
    rep = check_data(str(chips), resolution=32, crop=16)
    text = rep.format()
    assert "centre 16x16 source pixels" in text and "6%" in text
    assert any("upscaled to 32" in w for w in rep.warnings)
    grid = crop_preview(str(chips), 16, 1, 16, per_class=2)
    assert grid.shape[0] == 2 * 18 + 2 and grid.shape[1] == 4 * 18 + 2  # 2 classes x (2 whole + 2 crops)
    assert torch.is_tensor(torch.from_numpy(grid))
