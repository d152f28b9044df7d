"""Shared fixtures: small image folders written on the fly."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

PNG_MODES = ("L", "LA", "RGB", "RGBA", "P", "I;16", "1")


def write_image(
    path: Path, size: tuple[int, int], mode: str, rng: np.random.Generator, level: float = 0.5
) -> Path:
    """A random PNG-able image of `size` (W, H) and `mode`, brightness around `level` (0-1)."""
    w, h = size
    base = np.clip(level * 255 + rng.normal(0, 40, (h, w, 3)), 0, 255).astype(np.uint8)
    if mode == "I;16":
        im = Image.fromarray(base[..., 0].astype(np.uint16) * 257)
    else:
        im = Image.fromarray(base, "RGB")
        if mode != "RGB":
            im = im.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path)
    return path


@pytest.fixture
def make_imagefolder() -> Callable[..., Path]:
    """Factory: `(root, classes=("a", "b"), per_class=8, size=(32, 32), mode="RGB") -> root`.

    Writes root/<class>/<i>.png with seeded random pixels; class k is brighter than class k-1, so a
    classifier can tell them apart. Modes: L, LA, RGB, RGBA, P, I;16, 1.
    """

    def make(
        root: Path | str,
        classes: Sequence[str] = ("a", "b"),
        per_class: int = 8,
        size: tuple[int, int] = (32, 32),
        mode: str = "RGB",
    ) -> Path:
        if mode not in PNG_MODES:
            raise ValueError(f"mode {mode!r} not one of {PNG_MODES}")
        root = Path(root)
        rng = np.random.default_rng(0)
        for k, name in enumerate(classes):
            level = (k + 1) / (len(classes) + 1)
            for i in range(per_class):
                write_image(root / name / f"{i:04d}.png", size, mode, rng, level)
        return root

    return make


TINY_OVERRIDES = {
    "data": {"resolution": 16, "channels": 1},
    "model": {"latent_dim": 16, "g_width": 8, "e_width": 8, "d_width": 8, "scales": 2},
    "train": {"batch_size": 8, "log_every": 5, "sample_every": 10, "checkpoint_every": 10, "ema_start": 5},
}


@pytest.fixture
def tiny_config() -> Callable[..., object]:
    """Factory: a very small config (16 px, narrow nets) for fast training tests, with extra overrides."""
    from vaemsgan.presets import build_config

    def make(preset: str = "default", **sections: dict) -> object:
        cfg = build_config(preset, TINY_OVERRIDES)
        if sections:
            from vaemsgan.config import apply_overrides

            apply_overrides(cfg, sections)
        return cfg

    return make


@pytest.fixture
def tiny_images() -> object:
    """Two classes of 16 px grey images (from the embedded Fashion-MNIST subset), 24 each."""
    from vaemsgan.data import load_images

    return load_images("fashion-mnist-mini", resolution=16, per_class=24, classes=["trouser", "sneaker"])


@pytest.fixture
def run_cli() -> Callable[..., int]:
    """Run the CLI in-process with arguments of any type (paths, numbers); returns its exit code."""
    from vaemsgan.cli.main import main

    return lambda *argv: main([str(a) for a in argv])


TINY_RUN_CLASSES = ("trouser", "sneaker", "bag")
TINY_RUN_PER_CLASS = 6


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny model trained for a few steps on fashion-mnist-mini (3 classes x 6 images, 16 px, widths 8,
    latent 16), through `vaemsgan train`; shared by the API and variations tests. Read-only: copy it to
    change it."""
    from vaemsgan.cli.main import main

    run = tmp_path_factory.mktemp("tiny-run") / "run"
    argv = ["train", "--data", "fashion-mnist-mini", "--classes", ",".join(TINY_RUN_CLASSES)]
    argv += ["--per-class", str(TINY_RUN_PER_CLASS), "--out", str(run), "--steps", "6", "--resolution", "16"]
    argv += ["--batch-size", "8", "--g-width", "8", "--d-width", "8", "--latent-dim", "16"]
    argv += ["--set", "model.e_width=8", "--set", "train.ema_start=2", "--checkpoint-every", "3"]
    argv += ["--sample-every", "6", "--no-progress", "--threads", "1"]
    assert main(argv) == 0
    return run
