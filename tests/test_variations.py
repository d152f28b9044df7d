"""Encoder-anchored variations of real images (issue 12) and reconstruction quality (SSIM)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import vaemsgan
from vaemsgan.api import Model
from vaemsgan.data import load_images
from vaemsgan.generation import sampler
from vaemsgan.metrics.reconstruction import reconstruction_quality, ssim

CLASSES = ["trouser", "sneaker", "bag"]


@pytest.fixture(scope="module")
def model(tiny_run: Path) -> Model:
    return vaemsgan.load(tiny_run)


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ImageFolder of 3 classes x 4 real 16 px Fashion-MNIST images (the model's format)."""
    root = tmp_path_factory.mktemp("real") / "data"
    data = load_images("fashion-mnist-mini", resolution=16, per_class=4, classes=CLASSES, seed=5)
    for i, (img, y) in enumerate(zip(data.images, data.labels)):
        (root / CLASSES[y]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img[0].numpy()).save(root / CLASSES[y] / f"img{i:02d}.png")
    return root


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.array(im)


def _variations(run_cli: Callable[..., int], run: Path, data: Path | str, out: Path, *extra: object) -> dict:
    argv = ["generate", "--checkpoint", run, "--from-real", data, "--out", out, "--no-progress", *extra]
    assert run_cli(*argv) == 0
    return json.loads((out / "manifest.json").read_text())


def test_temperature_zero_is_the_reconstruction(
    tiny_run: Path, real_folder: Path, tmp_path: Path, run_cli: Callable[..., int]
) -> None:
    rec = tmp_path / "rec"
    assert run_cli("reconstruct", "--checkpoint", tiny_run, "--input", real_folder, "--out", rec) == 0
    out = tmp_path / "var"
    manifest = _variations(run_cli, tiny_run, real_folder, out, "--variations", 1, "--temperature", 0)
    assert len(manifest["files"]) == 12
    for f in manifest["files"]:
        source = Path(f["source_file"]).relative_to(real_folder)
        assert np.array_equal(_png(out / f["file"]), _png(rec / source)), f["file"]


def test_k_variations_differ_and_are_reproducible(
    tiny_run: Path, real_folder: Path, tmp_path: Path, run_cli: Callable[..., int]
) -> None:
    opts = ("--variations", 3, "--temperature", 1.5, "--seed", 7)
    a = _variations(run_cli, tiny_run, real_folder, tmp_path / "a", *opts)
    b = _variations(run_cli, tiny_run, real_folder, tmp_path / "b", *opts)
    c = _variations(run_cli, tiny_run, real_folder, tmp_path / "c", "--variations", 3, "--temperature", 1.5)
    assert a["files"] == b["files"]
    images = {f["file"]: _png(tmp_path / "a" / f["file"]) for f in a["files"]}
    for f in a["files"]:
        assert np.array_equal(images[f["file"]], _png(tmp_path / "b" / f["file"]))
    same_seed_0 = [np.array_equal(images[f["file"]], _png(tmp_path / "c" / f["file"])) for f in c["files"]]
    assert not any(same_seed_0)
    by_source: dict[int, list[np.ndarray]] = {}
    for f in a["files"]:
        by_source.setdefault(f["source_index"], []).append(images[f["file"]])
    for imgs in by_source.values():
        assert len(imgs) == 3
        assert not np.array_equal(imgs[0], imgs[1]) and not np.array_equal(imgs[1], imgs[2])


def test_manifest_maps_every_file_to_its_source_and_label(
    model: Model, tiny_run: Path, real_folder: Path, tmp_path: Path, run_cli: Callable[..., int]
) -> None:
    out = tmp_path / "var"
    m = _variations(run_cli, tiny_run, real_folder, out, "--variations", 2, "--temperature", 0.5, "--seed", 3)
    data = load_images(real_folder, resolution=16, classes=CLASSES)  # the run's classes, in its order
    assert m["variations"] == 2 and m["temperature"] == 0.5 and m["seed"] == 3 and m["mix"] is None
    assert m["data"]["images"] == 12 and m["checkpoint"] == str(model.checkpoint)
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*.png"))
    assert written == sorted(f["file"] for f in m["files"])
    assert sorted((f["source_index"], f["variation"]) for f in m["files"]) == [
        (i, v) for i in range(12) for v in range(2)
    ]
    for f in m["files"]:
        i = f["source_index"]
        assert f["source_file"] == data.files[i]
        assert f["class"] == data.class_names[data.labels[i]] == Path(f["file"]).parent.name
        assert f["label"] == model.class_names.index(f["class"])
        assert (f["temperature"], f["seed"]) == (0.5, 3)
    # Built-in data: indices into the loaded set (per-class subset with the run's seed), no file.
    out2 = tmp_path / "builtin"
    m2 = _variations(
        run_cli,
        tiny_run,
        "fashion-mnist-mini",
        out2,
        "--variations",
        1,
        "--per-class",
        2,
        "--classes",
        "bag,trouser",
    )
    assert len(m2["files"]) == 4 and m2["data"]["per_class"] == 2
    assert {f["class"] for f in m2["files"]} == {"bag", "trouser"}
    assert all(f["source_file"] is None and f["label"] == CLASSES.index(f["class"]) for f in m2["files"])
    # Without --classes: the run's own classes (it was trained on three of the ten).
    m3 = _variations(
        run_cli, tiny_run, "fashion-mnist-mini", tmp_path / "own", "--variations", 1, "--per-class", 1
    )
    assert sorted(f["class"] for f in m3["files"]) == sorted(CLASSES) and m3["data"]["classes"] == CLASSES


def test_mix_moves_toward_another_image_of_the_same_class(
    model: Model, real_folder: Path, tmp_path: Path
) -> None:
    m = model.write_variations(real_folder, tmp_path / "mix", 4, temperature=0.0, mix=(0.2, 0.6), seed=1)
    data = load_images(real_folder, resolution=16, classes=CLASSES)  # the run's classes, in its order
    for f in m["files"]:
        assert 0.2 <= f["mix"] <= 0.6
        assert f["mix_with"] != f["source_index"]
        assert data.labels[f["mix_with"]] == data.labels[f["source_index"]]
        assert f["mix_with_file"] == data.files[f["mix_with"]]
    # At temperature 0 the only randomness is the mix: without it all K variations are one image.
    images = model.images(list(map(Image.open, data.files)))
    plain = model.variations(images, data.labels, k=2, temperature=0.0)
    assert torch.equal(plain[:, 0], plain[:, 1])
    mixed = model.variations(images, data.labels, k=2, temperature=0.0, mix=(0.5, 0.5))
    assert not torch.equal(mixed[:, 0], plain[:, 0])


def test_mix_nearest_moves_toward_the_nearest_image_of_the_class(
    model: Model, real_folder: Path, tmp_path: Path, run_cli: Callable[..., int]
) -> None:
    """`generate --from-real --mix 1,1 --mix-nearest 1 --temperature 0`: every variation is the decode of its
    source image's nearest neighbour of the class in the encoder's space, and the manifest says so."""
    from vaemsgan.generation.variations import nearest_neighbours
    from vaemsgan.inference import encode

    m = _variations(run_cli, model.checkpoint, real_folder, tmp_path / "near", "--variations", 2,
                    "--temperature", 0, "--mix", "1,1", "--mix-nearest", 1)  # fmt: skip
    assert m["mix_nearest"] == 1
    data = load_images(real_folder, resolution=16, classes=CLASSES)
    mu, _ = encode(model.loaded, data.images)
    near = nearest_neighbours(mu, data.labels, 1)
    assert all(f["mix_with"] == int(near[f["source_index"]][0]) for f in m["files"])
    again = model.variations(data.images, data.labels, k=2, temperature=0.0, mix=(1.0, 1.0), nearest=1)
    assert torch.equal(again[:, 0], again[:, 1])  # a = 1 and one neighbour: both variations are one image


def test_api_variations_at_temperature_zero_equal_reconstruct(model: Model) -> None:
    x = model.sample("sneaker", 6, seed=2)
    rec = model.reconstruct(x, labels="sneaker")
    v = model.variations(x, labels="sneaker", k=1, temperature=0.0)
    assert v.shape == (6, 1, 1, 16, 16) and torch.equal(v[:, 0], rec)
    a = model.variations(x, labels="sneaker", k=3, temperature=1.0, seed=4)
    assert torch.equal(a, model.variations(x, labels="sneaker", k=3, temperature=1.0, seed=4))
    assert not torch.equal(a, model.variations(x, labels="sneaker", k=3, temperature=1.0, seed=5))


def test_posterior_decoder_keeps_the_better_calibration(model: Model) -> None:
    """Given the images, the decoder is calibrated on the means alone or on the training mix, whichever
    reconstructs them better: never worse than the means alone, and the same decoder for the same images."""
    from vaemsgan.inference import decode, encode, labels_for, posterior_decoder

    lm = model.loaded
    data = load_images("fashion-mnist-mini", resolution=16, per_class=4, classes=CLASSES, seed=5)
    x = data.images
    y = labels_for(lm, torch.tensor([lm.class_names.index(CLASSES[c]) for c in data.labels]), len(x))
    mu, _ = encode(lm, x)

    def error(decoder: torch.nn.Module) -> float:
        return float(((decode(decoder, mu, y).float() - x.float()) ** 2).mean())

    chosen = posterior_decoder(lm, mu, y, x)
    assert error(chosen) <= error(posterior_decoder(lm, mu, y))
    assert torch.equal(decode(chosen, mu, y), decode(posterior_decoder(lm, mu, y, x), mu, y))


def test_interrupted_variations_resume_to_the_same_folder(
    model: Model, real_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = model.write_variations(real_folder, tmp_path / "whole", 2, seed=9)
    real_save, count = sampler.save_png, [0]

    def crash_after_five(*args: object, **kwargs: object) -> object:
        count[0] += 1
        if count[0] > 5:
            raise KeyboardInterrupt
        return real_save(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sampler, "save_png", crash_after_five)
    out = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        model.write_variations(real_folder, out, 2, seed=9, batch_size=4)
    monkeypatch.setattr(sampler, "save_png", real_save)
    assert not (out / "manifest.json").exists() and len(list(out.rglob("*.png"))) == 5
    with pytest.raises(vaemsgan.errors.OutputExistsError, match="other settings"):
        model.write_variations(real_folder, out, 2, seed=10, resume=True)
    resumed = model.write_variations(real_folder, out, 2, seed=9, resume=True)
    assert resumed["files"] == whole["files"]
    for f in whole["files"]:
        assert np.array_equal(_png(out / f["file"]), _png(tmp_path / "whole" / f["file"]))
    with pytest.raises(vaemsgan.errors.OutputExistsError, match="--force"):
        model.write_variations(real_folder, out, 2, seed=9)


@pytest.mark.parametrize(
    "extra, needle",
    [
        (("--variations", 0), "--variations: '0' is not an integer from 1"),
        (("--variations", 2, "--temperature", -0.5), "--temperature: '-0.5' is not a number from 0"),
        (("--variations", 2, "--temperature", "nan"), "--temperature: 'nan' is not a number from 0"),
        (("--variations", 2, "--mix", "0.6,0.2"), "--mix must be LO,HI with 0 <= LO <= HI <= 1"),
        (("--variations", 2, "--mix", "0.1,1.5"), "--mix must be LO,HI"),
        (("--variations", 2, "--mix", "abc"), "--mix must be LO,HI"),
        (("--variations", 2, "--mix", "0.1"), "--mix must be LO,HI"),
        ((), "--from-real needs --variations K"),
        (("--variations", 2, "--truncation", 1.0), "--truncation does not apply to --from-real"),
        (("--variations", 2, "--truncation", 0), "--truncation: '0' is not a number > 0"),
        (("--variations", 2, "--classes", "cat"), "unknown class name"),
        (("--variations", 2, "--per-class", 0), "--per-class: '0' is not an integer from 1"),
        (("--variations", 2, "--mix-nearest", 2), "--mix-nearest needs --mix LO,HI"),
        (("--variations", 2, "--mix", "0.2,0.4", "--mix-nearest", 0), "--mix-nearest: '0' is not an integer"),
    ],
)
def test_bad_variation_options_give_one_line_and_exit_2(
    extra: tuple[object, ...],
    needle: str,
    tiny_run: Path,
    tmp_path: Path,
    run_cli: Callable[..., int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = (
        "generate",
        "--checkpoint",
        tiny_run,
        "--from-real",
        "fashion-mnist-mini",
        "--out",
        tmp_path / "o",
    )
    rc = run_cli(*argv, *extra)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "o").exists()


def test_variations_of_a_folder_without_the_models_classes(
    tiny_run: Path, tmp_path: Path, run_cli: Callable[..., int], capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data" / "cat").mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "data" / "cat" / "0.png")
    rc = run_cli(
        "generate",
        "--checkpoint",
        tiny_run,
        "--from-real",
        tmp_path / "data",
        "--variations",
        1,
        "--out",
        tmp_path / "o",
    )
    err = capsys.readouterr().err
    assert rc == 2 and "unknown class name(s) 'trouser'" in err and err.count("\n") == 1
    # Named explicitly, a class the model lacks is refused as such.
    (tmp_path / "data" / "bag").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "data" / "bag" / "0.png")
    argv = ("generate", "--checkpoint", tiny_run, "--from-real", tmp_path / "data", "--variations", 1)
    assert run_cli(*argv, "--classes", "bag,cat", "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "class 'cat' is not one of the model's" in err and err.count("\n") == 1


# ---------------------------------------------------------------- SSIM and reconstruction quality


def test_ssim_known_answers() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 20, 20, generator=g)
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64))
    # Constant images a and b: no variance, so SSIM = (2ab + C1) / (a^2 + b^2 + C1), C1 = 0.01^2.
    for a, b in [(0.0, 1.0), (0.25, 0.75), (0.5, 0.5)]:
        c1 = 0.01**2
        want = (2 * a * b + c1) / (a * a + b * b + c1)
        got = ssim(torch.full((1, 1, 16, 16), a), torch.full((1, 1, 16, 16), b))
        assert got.item() == pytest.approx(want, rel=1e-9)
    # Data range 255: the same value for the same images on the 0-255 scale.
    y = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert torch.allclose(ssim(x * 255, y * 255, data_range=255.0), ssim(x, y))
    assert torch.allclose(ssim(x, y), ssim(y, x))  # symmetric
    noisier = (x + 0.3 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert (ssim(x, noisier) < ssim(x, y)).all() and (ssim(x, y) < 1).all()


def test_ssim_agrees_with_torchmetrics() -> None:
    tm = pytest.importorskip("torchmetrics.functional.image")
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 24, 24, generator=g, dtype=torch.float64)
    y = (x + 0.2 * torch.randn(x.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    # torchmetrics reflect-pads by half the window and averages over every pixel; ours uses the
    # positions where the window fits, so pad the same way first.
    pad = lambda t: F.pad(t, (5, 5, 5, 5), mode="reflect")  # noqa: E731
    want = tm.structural_similarity_index_measure(y, x, data_range=1.0, reduction="none")
    assert torch.allclose(ssim(pad(x), pad(y)), want, atol=1e-10)


def test_reconstruction_quality_numbers() -> None:
    zeros = torch.zeros(2, 1, 16, 16, dtype=torch.uint8)
    same = reconstruction_quality(zeros, zeros.clone())
    assert (same.mae, same.rmse, same.psnr, same.ssim) == (0.0, 0.0, float("inf"), 1.0)
    worst = reconstruction_quality(zeros, torch.full_like(zeros, 255))
    assert (worst.mae, worst.rmse, worst.psnr) == (1.0, 1.0, 0.0)
    assert worst.ssim == pytest.approx(1e-4 / (1 + 1e-4))
    half = torch.zeros_like(zeros)
    half[:, :, :8] = 255  # half the pixels wrong by 1: MSE 0.5
    q = reconstruction_quality(zeros, half)
    assert q.mae == 0.5 and q.psnr == pytest.approx(10 * np.log10(2))
    # Classifier: logits or indices, accuracy on reconstructions and on originals.
    labels = torch.tensor([0, 1])
    by_brightness = lambda b: (b.float().mean((1, 2, 3)) > 127).long()  # noqa: E731
    q = reconstruction_quality(zeros, torch.full_like(zeros, 255), labels, by_brightness)
    assert (q.classifier_accuracy, q.classifier_accuracy_real) == (0.5, 0.5)
    logits = lambda b: torch.stack([torch.ones(len(b)), torch.zeros(len(b))], 1)  # noqa: E731
    assert reconstruction_quality(zeros, zeros, labels, logits).classifier_accuracy == 0.5


def test_model_reconstruction_quality(model: Model) -> None:
    data = load_images("fashion-mnist-mini", resolution=16, per_class=4, classes=CLASSES)
    q = model.reconstruction_quality(data.images, data.labels, classifier=lambda b: torch.zeros(len(b)))
    assert q.images == 12 and 0 < q.mae < 1 and 0 < q.rmse < 1 and -1 <= q.ssim_min <= q.ssim < 1
    assert q.classifier_accuracy == q.classifier_accuracy_real == pytest.approx(4 / 12)
    rec = model.reconstruct(data.images, data.labels)
    assert q.ssim == pytest.approx(float(ssim(data.images / 255.0, rec / 255.0).mean()))
    assert set(q.to_dict()) >= {"mae", "rmse", "psnr", "ssim", "classifier_accuracy"}


def test_nearest_partners_are_the_closest_of_the_class() -> None:
    """Points on a line: with nearest=1 each image mixes with its neighbour on the line (never across
    classes), and at a = 1 and temperature 0 the latent is exactly the neighbour's mean."""
    from vaemsgan.errors import ConfigError
    from vaemsgan.generation.variations import nearest_neighbours, variation_latents

    pos = torch.tensor([0.0, 1.0, 3.0, 7.0, 0.5, 0.6])
    mu = torch.stack([pos, torch.zeros(6)], 1)
    classes = torch.tensor([0, 0, 0, 0, 1, 1])
    expected = [[1, 2], [0, 2], [1, 0], [2, 1], [5], [4]]
    assert [c.tolist() for c in nearest_neighbours(mu, classes, 2)] == expected
    assert [c.tolist() for c in nearest_neighbours(mu, classes, 2, chunk=3)] == expected  # rows in chunks
    lat = variation_latents(mu, torch.zeros(6, 2), classes, 3, 0.0, (1.0, 1.0), seed=2, nearest=1)
    assert lat.partner is not None and lat.partner[:, 0].tolist() == [1, 0, 1, 2, 5, 4]
    assert torch.equal(lat.z, mu[lat.partner])
    half = variation_latents(mu, torch.zeros(6, 2), classes, 1, 0.0, (0.5, 0.5), nearest=1)
    assert torch.allclose(half.z[:, 0, 0], torch.tensor([0.5, 0.5, 2.0, 5.0, 0.55, 0.55]))
    assert nearest_neighbours(mu[:1], classes[:1], 3)[0].tolist() == [0]  # a class of one mixes with itself
    with pytest.raises(ConfigError, match="nearest neighbours"):
        variation_latents(mu, torch.zeros(6, 2), classes, 1, 0.0, (0.5, 0.5), nearest=0)


def test_random_partners_are_those_drawn_before_nearest_existed() -> None:
    """Without `nearest` the draws are those of the code before it (7c14e75), pinned: variations written
    then are written again the same."""
    from vaemsgan.generation.variations import variation_latents

    g = torch.Generator().manual_seed(3)
    mu = torch.randn(12, 4, generator=g)
    classes = torch.tensor([0, 1, 2, 0, 1, 0, 0, 1, 2, 0, 1, 3])
    lat = variation_latents(mu, torch.zeros(12, 4), classes, 2, 0.5, (0.2, 0.8), seed=7)
    assert lat.partner is not None and lat.partner.tolist() == [
        [3, 9], [10, 10], [8, 8], [6, 6], [10, 1], [6, 0], [0, 3], [4, 10], [2, 2], [5, 5], [7, 1], [11, 11]
    ]  # fmt: skip
    assert float(lat.z.sum()) == pytest.approx(17.250154495239258, abs=1e-5)
