"""The Python API (issue 13): vaemsgan.load, Model, SyntheticDataset, GeneratedImageFolder, the README."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import ConcatDataset, DataLoader, Dataset

import vaemsgan
from vaemsgan.api import GeneratedImageFolder, Model, SyntheticDataset
from vaemsgan.errors import CheckpointError, ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]


class RealImages(Dataset):
    """A user's dataset as torchvision's are: (float image, int label)."""

    def __init__(self, images: torch.Tensor, labels: list[int]) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], self.labels[i]


@pytest.fixture(scope="module")
def model(tiny_run: Path) -> Model:
    return vaemsgan.load(tiny_run)


def _png(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        return torch.from_numpy(np.array(im))[None]


def test_package_exports_the_api_lazily() -> None:
    assert vaemsgan.load is vaemsgan.api.load and vaemsgan.SyntheticDataset is SyntheticDataset
    code = (
        "import sys, vaemsgan; print('torch' in sys.modules, callable(vaemsgan.load), 'torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["False", "True", "True"]
    with pytest.raises(AttributeError):
        _ = vaemsgan.no_such_name  # type: ignore[attr-defined]


def test_load_says_which_checkpoint_and_prefers_best(tiny_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    newest = run / "checkpoints" / "step-0000006.pt"
    m = vaemsgan.load(run)
    assert m.checkpoint == newest and m.step == 6 and str(newest) in repr(m)
    shutil.copy(run / "checkpoints" / "step-0000003.pt", run / "best.pt")
    assert vaemsgan.load(run).checkpoint == run / "best.pt"
    assert vaemsgan.load(run).step == 3
    assert vaemsgan.load(run, prefer_best=False).checkpoint == newest
    assert vaemsgan.load(newest).checkpoint == newest
    with pytest.raises(CheckpointError):
        vaemsgan.load(tmp_path / "missing")


def test_model_describes_itself(model: Model) -> None:
    assert model.class_names == ["trouser", "sneaker", "bag"]
    assert model.class_to_idx == {"trouser": 0, "sneaker": 1, "bag": 2}
    assert (model.resolution, model.channels, model.latent_dim) == (16, 1, 16)
    assert model.conditional and model.has_encoder and model.device == torch.device("cpu")
    assert model.class_index("bag") == 2 and model.class_index(1) == 1
    with pytest.raises(ConfigError, match="unknown class 'cat'"):
        model.class_index("cat")
    with pytest.raises(ConfigError, match="out of range"):
        model.class_index(3)


def test_sample_is_seeded_and_matches_generate(
    model: Model, tiny_run: Path, tmp_path: Path, run_cli: Callable[..., int]
) -> None:
    x = model.sample("bag", 5, seed=3)
    assert x.dtype == torch.uint8 and x.shape == (5, 1, 16, 16)
    assert torch.equal(x, model.sample(2, 5, seed=3))  # by index too
    assert not torch.equal(x, model.sample("bag", 5, seed=4))
    assert not torch.equal(x, model.sample("sneaker", 5, seed=3))
    x[0, 0, 0, 0] = 7  # an ordinary tensor: the caller may edit it
    out = tmp_path / "gen"
    assert run_cli("generate", "--checkpoint", tiny_run, "--per-class", 5, "--seed", 3, "--out", out) == 0
    x = model.sample("bag", 5, seed=3)
    for j in range(5):
        assert torch.equal(x[j], _png(out / "bag" / f"{j:06d}.png"))
    pil = model.sample("bag", 5, seed=3, as_pil=True)
    assert [im.mode for im in pil] == ["L"] * 5 and pil[0].size == (16, 16)
    assert torch.equal(torch.from_numpy(np.array(pil[4]))[None], x[4])
    with pytest.raises(ConfigError, match="at least 1"):
        model.sample("bag", 0)


def test_reconstruct_accepts_uint8_float_and_pil(model: Model) -> None:
    x = model.sample("trouser", 4, seed=0)
    rec = model.reconstruct(x, labels="trouser")
    assert rec.dtype == torch.uint8 and rec.shape == x.shape
    assert torch.equal(rec, model.reconstruct(x.float() / 255, labels=[0, 0, 0, 0]))
    pil = [Image.fromarray(a[0].numpy()) for a in x]
    assert torch.equal(rec, model.reconstruct(pil, labels=torch.zeros(4, dtype=torch.long)))
    # PIL images of another size are resized as training data is.
    big = [im.resize((40, 40)) for im in pil]
    assert model.reconstruct(big, labels="trouser").shape == x.shape
    with pytest.raises(ConfigError, match="class-conditional"):
        model.reconstruct(x)
    with pytest.raises(DataError, match="model works on"):
        model.reconstruct(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), labels="bag")
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        model.reconstruct(x.float(), labels="bag")
    with pytest.raises(ConfigError, match="3 labels for 4 images"):
        model.reconstruct(x, labels=["bag"] * 3)


def test_synthetic_dataset_matches_generate_and_mixes_with_real_data(
    model: Model, tiny_run: Path, tmp_path: Path, run_cli: Callable[..., int]
) -> None:
    out = tmp_path / "gen"
    assert run_cli("generate", "--checkpoint", tiny_run, "--per-class", 3, "--seed", 1, "--out", out) == 0
    ds = model.dataset(per_class=3, seed=1)
    assert len(ds) == 9 and ds.targets == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for i, (name, j) in enumerate((c, j) for c in model.class_names for j in range(3)):
        img, target = ds[i]
        assert img.dtype == torch.float32 and img.min() >= 0 and img.max() <= 1
        assert target == model.class_names.index(name)
        assert torch.equal((img * 255).round().to(torch.uint8), _png(out / name / f"{j:06d}.png"))
    # A DataLoader batch is decoded at once (__getitems__) and equals the items one by one.
    batch = ds.__getitems__([8, 0, 4])
    assert all(
        torch.equal(batch[k][0], ds[i][0]) and batch[k][1] == ds[i][1] for k, i in enumerate([8, 0, 4])
    )
    assert torch.equal(ds[-1][0], ds[8][0])
    with pytest.raises(IndexError):
        ds[9]
    # Mixed with a "real" dataset whose label indices differ: target_map aligns them.
    mapping = {"bag": 0, "sneaker": 1, "trouser": 2}
    mapped = model.dataset(per_class=3, seed=1, classes=["bag", "trouser"], target_map=mapping)
    assert len(mapped) == 6 and mapped.targets == [0, 0, 0, 2, 2, 2]
    assert torch.equal(mapped[0][0], ds[6][0])  # bag 0 is the same image whatever the subset
    real = RealImages(torch.rand(5, 1, 16, 16), [0, 1, 2, 0, 1])
    loader = DataLoader(
        ConcatDataset([real, mapped]), batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    seen = [(x.shape, y.tolist()) for x, y in loader]
    assert sum(len(y) for _, y in seen) == 11 and all(s[1:] == (1, 16, 16) for s, _ in seen)
    assert sorted(sum((y for _, y in seen), [])) == sorted([0, 1, 2, 0, 1, 0, 0, 0, 2, 2, 2])
    # transform gets the uint8 image.
    raw = SyntheticDataset(model, 3, seed=1, transform=lambda im: im)
    assert raw[0][0].dtype == torch.uint8
    with pytest.raises(ConfigError, match="target_map"):
        model.dataset(per_class=2, target_map={"bag": 0})
    with pytest.raises(ConfigError, match="per_class"):
        model.dataset(per_class=0)

    folder = GeneratedImageFolder(out)
    assert len(folder) == 9 and folder.class_to_idx == model.class_to_idx
    for i in range(9):
        assert torch.equal(folder[i][0], ds[i][0]) and folder[i][1] == ds[i][1]
    assert GeneratedImageFolder(out, target_map=mapping)[0][1] == 2  # trouser
    with pytest.raises(DataError, match="no manifest"):
        GeneratedImageFolder(tmp_path)


def test_cli_generate_option_errors_are_one_line(
    tiny_run: Path, tmp_path: Path, run_cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    for extra, needle in [
        ((), "--per-class N is required"),
        (("--per-class", 2, "--temperature", 0.5), "--temperature needs --from-real"),
        (("--per-class", 2, "--variations", 2), "--variations needs --from-real"),
    ]:
        rc = run_cli("generate", "--checkpoint", tiny_run, "--out", tmp_path / "x", *extra)
        err = capsys.readouterr().err
        assert rc == 2 and err.count("\n") == 1 and needle in err, err


def _readme_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) == 1, "the README has one Python example"
    return blocks[0]


def test_readme_python_example_runs(tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    code = _readme_python()
    assert 'vaemsgan.load("runs/demo/run")' in code
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    (tmp_path / "runs" / "demo" / "run").symlink_to(tiny_run)
    monkeypatch.chdir(tmp_path)
    # The tiny model knows trouser, sneaker, bag: the example's class exists.
    scope: dict[str, object] = {"__name__": "readme"}
    exec(compile(code, "README.md", "exec"), scope)
    x, y = scope["x"], scope["y"]
    assert isinstance(x, torch.Tensor) and x.shape[1:] == (1, 16, 16) and len(y) == len(x)  # type: ignore[arg-type]
    assert len(list((tmp_path / "synthetic").rglob("*.png"))) == 30
