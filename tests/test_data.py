"""vaemsgan.data: ImageFolder decoding, Fashion-MNIST (idx + embedded mini), subsets, check-data."""

from __future__ import annotations

import gzip
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vaemsgan.config import DataConfig
from vaemsgan.data import (
    BUILTIN_SOURCES,
    FASHION_MNIST_CLASSES,
    ImageSet,
    check_data,
    imagefolder,
    load_from_config,
    load_images,
)
from vaemsgan.data import fashion_mnist as fm
from vaemsgan.errors import ConfigError, DataError
from vaemsgan.limits import LIMITS

RNG = np.random.default_rng(0)
DEBIAN_FMNIST = Path(fm.DEFAULT_DATA_DIR) / "t10k-images-idx3-ubyte.gz"


def noise(h: int, w: int, c: int | None = 3) -> np.ndarray:
    shape = (h, w) if c is None else (h, w, c)
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def png_bytes(im: Image.Image) -> bytes:
    path = Path(tempfile.mkstemp(suffix=".png")[1])
    im.save(path)
    data = path.read_bytes()
    path.unlink()
    return data


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height: PIL sees the size on open, before any pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def messy_folder(tmp_path: Path) -> Path:
    """Two classes: every format and mode in 'alpha', broken and odd files in 'beta'."""
    root = tmp_path / "messy"
    a, b = root / "alpha", root / "beta"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    Image.fromarray(noise(30, 40, None), "L").save(a / "grey.png")
    Image.fromarray(noise(50, 17)).save(a / "rgb_tall.png")
    Image.fromarray(noise(32, 32, 4), "RGBA").save(a / "rgba.png")
    Image.fromarray(noise(20, 20)).convert("P").save(a / "palette.png")
    Image.fromarray(noise(24, 24, None).astype(np.uint16) * 257).save(a / "sixteen.png")
    Image.fromarray(noise(40, 50)).save(a / "photo.jpg", quality=90)
    Image.fromarray(noise(30, 30, 4), "CMYK").save(a / "cmyk.jpeg")
    Image.fromarray(noise(16, 16)).save(a / "bitmap.bmp")
    Image.fromarray(noise(28, 20, None).astype(np.uint16) * 257).save(a / "sixteen.tiff")
    Image.fromarray(noise(33, 33)).save(a / "web.webp")
    Image.fromarray(noise(12, 12)).convert("LA").save(a / "grey_alpha.png")
    frames = [Image.new("L", (10, 10), 0), Image.new("L", (10, 10), 255)]
    frames[0].save(a / "anim.gif", save_all=True, append_images=frames[1:])
    (a / "nested" / "deeper").mkdir(parents=True)
    Image.fromarray(noise(8, 8)).save(a / "nested" / "deeper" / "inner.png")

    for i in range(3):
        Image.fromarray(noise(20, 20)).save(b / f"ok{i}.png")
    good = png_bytes(Image.fromarray(noise(64, 64)))
    (b / "truncated.png").write_bytes(good[: len(good) // 2])
    (b / "empty.jpg").write_bytes(b"")
    (b / "text.png").write_text("not an image at all\n")
    (b / "notes.txt").write_text("labels are folder names\n")
    (b / ".hidden.png").write_text("ignored")
    (b / ".hidden_dir").mkdir()
    (b / ".hidden_dir" / "x.png").write_text("ignored")
    (b / "huge.png").write_bytes(huge_png_header(100_000, 100_000))
    os.symlink(b, b / "loop")  # a folder linking to itself
    os.symlink(b / "self.png", b / "self.png")  # a file linking to itself
    return root


# ---------------------------------------------------------------- ImageFolder


@pytest.mark.parametrize("channels", [1, 3])
def test_imagefolder_formats_modes_and_skips(messy_folder: Path, channels: int) -> None:
    s = load_images(str(messy_folder), resolution=16, channels=channels)
    assert s.class_names == ["alpha", "beta"]
    assert s.images.shape == (16, channels, 16, 16) and s.images.dtype == torch.uint8
    assert s.images.is_contiguous() and s.labels.dtype == torch.int64
    assert s.counts() == [13, 3]
    assert s.files is not None and any(f.endswith("inner.png") for f in s.files)
    assert s.source == str(messy_folder)
    reasons = {Path(f).name: r for f, r in s.skipped}
    assert set(reasons) == {"truncated.png", "empty.jpg", "text.png", "notes.txt", "huge.png", "self.png"}
    assert "truncated" in reasons["truncated.png"]
    assert "not an image" in reasons["empty.jpg"] and "not an image" in reasons["text.png"]
    assert "extension '.txt'" in reasons["notes.txt"]
    assert reasons["huge.png"].startswith("image too large (100000 x 100000, L: 9537 MiB decoded")
    assert "cannot read file" in reasons["self.png"]
    gif = s.images[s.files.index(str(messy_folder / "alpha" / "anim.gif"))]
    assert gif.max() == 0  # first frame (black), not the white second one


def test_strict_mode_names_the_file(messy_folder: Path) -> None:
    with pytest.raises(DataError, match=r"notes\.txt: not an image file"):
        load_images(str(messy_folder), strict=True)
    (messy_folder / "beta" / "notes.txt").unlink()
    with pytest.raises(DataError, match=r"beta/(empty\.jpg|huge\.png|self\.png|text\.png|truncated\.png): "):
        load_images(str(messy_folder), strict=True)


def test_exif_orientation_applied(tmp_path: Path) -> None:
    # 40 wide x 20 tall, left half bright. Orientation 6 = display rotated 90 degrees clockwise,
    # so the bright half ends up on top of a 20 x 40 portrait image.
    arr = np.zeros((20, 40), np.uint8)
    arr[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    (tmp_path / "c").mkdir()
    Image.fromarray(arr, "L").save(tmp_path / "c" / "rotated.jpg", exif=exif.tobytes(), quality=95)
    img = load_images(str(tmp_path), resolution=16).images[0, 0].float()
    assert img[:6].mean() > 200 and img[-6:].mean() < 50
    assert abs(img[:, :8].mean() - img[:, 8:].mean()) < 20


def test_sixteen_bit_and_alpha_conversion(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    Image.fromarray(np.full((8, 8), 200 * 257, np.uint16)).save(tmp_path / "c" / "a16.png")
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[:4, ..., 3] = 255  # top half opaque, bottom transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c" / "b_rgba.png")
    s = load_images(str(tmp_path), resolution=8, channels=3)
    assert s.images[0].unique().tolist() == [200]  # 16-bit scaled, not clipped to 255
    top, bottom = s.images[1][:, :4], s.images[1][:, 4:]
    assert top[:, 0, 0].tolist() == [200, 100, 50]
    assert bottom.max() == 0  # composited on black


def test_resize_shorter_side_and_centre_crop(tmp_path: Path) -> None:
    arr = np.zeros((32, 96), np.uint8)
    arr[:, 32:64] = 255  # white centre square: all that survives the crop
    (tmp_path / "c").mkdir()
    Image.fromarray(arr, "L").save(tmp_path / "c" / "wide.png")
    img = load_images(str(tmp_path), resolution=16).images[0, 0]
    # The resampling filter reaches 1 px past the crop box: only the edge columns blend in black.
    assert img.shape == (16, 16) and img[:, 1:-1].min() >= 250 and img.min() > 200


def test_folder_errors_name_the_path(tmp_path: Path, make_imagefolder) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(DataError, match=f"{missing}: no such folder"):
        load_images(str(missing))
    f = tmp_path / "file.png"
    f.write_text("x")
    with pytest.raises(DataError, match=f"{f}: is a file"):
        load_images(str(f))
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(noise(8, 8)).save(flat / "x.png")
    with pytest.raises(DataError, match=f"{flat}: no class subfolders .*found 1 images"):
        load_images(str(flat))
    root = make_imagefolder(tmp_path / "ds", classes=("a", "b"), per_class=2)
    (root / "empty").mkdir()
    with pytest.raises(DataError, match=f"{root / 'empty'}: class folder 'empty' has no images"):
        load_images(str(root))
    (root / "empty").rmdir()
    (root / "broken").mkdir()
    (root / "broken" / "x.jpg").write_bytes(b"")
    with pytest.raises(DataError, match=f"{root / 'broken'}: class folder 'broken' has no usable images"):
        load_images(str(root))
    (root / "broken" / "x.jpg").unlink()
    (root / "broken").rmdir()
    with pytest.raises(DataError, match=f"{root}: no test split"):
        load_images(str(root), split="test")
    with pytest.raises(DataError, match=rf"{root}: unknown class name\(s\) 'zebra' \(available: a, b\)"):
        load_images(str(root), classes=["zebra"])
    with pytest.raises(ConfigError):
        load_images(str(root), channels=2)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any folder")
def test_unreadable_folder(tmp_path: Path) -> None:
    d = tmp_path / "locked"
    d.mkdir()
    d.chmod(0)
    try:
        with pytest.raises(DataError, match=f"{d}: folder is not readable"):
            load_images(str(d))
    finally:
        d.chmod(0o755)


def test_train_test_layout(tmp_path: Path, make_imagefolder) -> None:
    make_imagefolder(tmp_path / "train", classes=("x", "y"), per_class=4)
    make_imagefolder(tmp_path / "test", classes=("x", "y"), per_class=2)
    train = load_images(str(tmp_path), resolution=16)
    test = load_images(str(tmp_path), split="test", resolution=16)
    assert train.counts() == [4, 4] and test.counts() == [2, 2]
    assert train.class_names == test.class_names == ["x", "y"]
    assert test.source == str(tmp_path / "test")
    make_imagefolder(tmp_path / "test", classes=("z",), per_class=1)
    with pytest.raises(DataError, match=r"class folders differ .*extra: z"):
        load_images(str(tmp_path), split="test")


def test_classes_option_orders_labels(tmp_path: Path, make_imagefolder) -> None:
    root = make_imagefolder(tmp_path, classes=("a", "b", "c"), per_class=3, mode="L")
    s = load_images(str(root), classes=["c", "a"], resolution=16)
    assert s.class_names == ["c", "a"] and s.counts() == [3, 3]
    assert all("/c/" in f for f, lab in zip(s.files, s.labels.tolist(), strict=True) if lab == 0)


def test_decompression_bomb_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "c").mkdir()
    Image.fromarray(noise(20, 30)).save(tmp_path / "c" / "a.png")
    monkeypatch.setattr(LIMITS, "max_image_bytes", 100)
    pil_limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(DataError, match=r"a\.png: image too large \(30 x 20, RGB: 2400 bytes decoded"):
        load_images(str(tmp_path), strict=True)
    assert pil_limit == Image.MAX_IMAGE_PIXELS  # PIL's global is restored after decoding


def test_progress_bar(tmp_path: Path, make_imagefolder, monkeypatch, capsys) -> None:
    root = make_imagefolder(tmp_path, per_class=3, size=(8, 8))
    monkeypatch.setattr(imagefolder, "PROGRESS_MIN_FILES", 1)
    load_images(str(root), progress=True)
    assert "loading" in capsys.readouterr().err


def test_make_imagefolder_fixture(tmp_path: Path, make_imagefolder) -> None:
    root = make_imagefolder(tmp_path / "f", classes=("a", "b", "c"), per_class=4, size=(24, 16), mode="I;16")
    s = load_images(str(root), resolution=16)
    assert s.counts() == [4, 4, 4]
    means = [s.images[s.labels == k].float().mean().item() for k in range(3)]
    assert means == sorted(means)  # classes differ in brightness


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    w=st.integers(1, 40),
    h=st.integers(1, 40),
    mode=st.sampled_from(["L", "RGB", "RGBA", "P", "I;16", "LA", "1", "CMYK"]),
    resolution=st.sampled_from([4, 16, 32]),
    channels=st.sampled_from([1, 3]),
)
def test_loader_property_any_size_and_mode(w: int, h: int, mode: str, resolution: int, channels: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "k").mkdir()
        if mode == "I;16":
            im = Image.fromarray(noise(h, w, None).astype(np.uint16) * 257)
        else:
            im = Image.fromarray(noise(h, w)).convert(mode)
        im.save(Path(d) / "k" / ("x.jpg" if mode == "CMYK" else "x.png"))
        s = load_images(d, resolution=resolution, channels=channels, strict=True)
    assert s.images.shape == (1, channels, resolution, resolution)
    assert s.images.dtype == torch.uint8


# ---------------------------------------------------------------- ImageSet


def _toy_set(per_class: tuple[int, ...] = (10, 7, 12)) -> ImageSet:
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(per_class)])
    images = torch.arange(len(labels), dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)
    names = [f"c{k}" for k in range(len(per_class))]
    return ImageSet(images, labels, names, "toy", files=[f"f{i}" for i in range(len(labels))])


def test_per_class_subset_deterministic_and_balanced() -> None:
    s = _toy_set()
    a, b = s.per_class_subset(5, seed=3), s.per_class_subset(5, seed=3)
    assert a.counts() == [5, 5, 5]
    assert torch.equal(a.images, b.images) and a.files == b.files
    assert not torch.equal(a.images, s.per_class_subset(5, seed=4).images)
    # A class's draw does not depend on which other classes are kept.
    only = s.select_classes(["c2"]).per_class_subset(5, seed=3)
    assert only.files == [f for f, lab in zip(a.files, a.labels.tolist(), strict=True) if lab == 2]
    with pytest.raises(DataError, match=r"toy: class 'c1' has only 7 images, fewer than per_class = 8"):
        s.per_class_subset(8, seed=0)


def test_select_classes_relabels() -> None:
    s = _toy_set().select_classes(["c2", "c0"])
    assert s.class_names == ["c2", "c0"] and s.counts() == [12, 10]
    assert s.files is not None and s.files[0] == "f0" and s.labels[0] == 1
    with pytest.raises(DataError, match=r"unknown class name\(s\) 'dog' \(available: c0, c1, c2\)"):
        _toy_set().select_classes(["dog"])


def test_subset_keeps_metadata() -> None:
    s = _toy_set()
    sub = s.subset(torch.tensor([3, 0]))
    assert len(sub) == 2 and sub.files == ["f3", "f0"] and sub.class_names == s.class_names
    assert len(s.subset(s.labels == 1)) == 7


# ---------------------------------------------------------------- Fashion-MNIST


def test_mini_set_counts() -> None:
    assert BUILTIN_SOURCES == ("fashion-mnist", "fashion-mnist-mini")
    train = load_images("fashion-mnist-mini")
    test = load_images("fashion-mnist-mini", split="test")
    assert train.class_names == FASHION_MNIST_CLASSES and len(FASHION_MNIST_CLASSES) == 10
    assert train.counts() == [200] * 10 and test.counts() == [100] * 10
    assert train.images.shape == (2000, 1, 32, 32) and train.source == "fashion-mnist-mini (train)"
    assert fm.MINI_PATH.stat().st_size < 5_000_000


def test_pad_keeps_pixels_and_resize() -> None:
    raw = load_images("fashion-mnist-mini", split="test", resolution=28).images
    padded = load_images("fashion-mnist-mini", split="test", resolution=32).images
    assert torch.equal(padded[:, :, 2:30, 2:30], raw)
    border = padded.clone()
    border[:, :, 2:30, 2:30] = 0
    assert border.max() == 0
    rgb = load_images("fashion-mnist-mini", split="test", resolution=16, channels=3, per_class=2).images
    assert rgb.shape == (20, 3, 16, 16) and torch.equal(rgb[:, 0], rgb[:, 2])


def test_builtin_subsets_are_seeded() -> None:
    a = load_images("fashion-mnist-mini", per_class=5, classes=["bag", "sandal"], seed=1)
    b = load_images("fashion-mnist-mini", per_class=5, classes=["bag", "sandal"], seed=1)
    assert a.counts() == [5, 5] and a.class_names == ["bag", "sandal"]
    assert torch.equal(a.images, b.images)
    with pytest.raises(DataError, match="fashion-mnist-mini .*: class 'bag' has only 100 images"):
        load_images("fashion-mnist-mini", split="test", per_class=101, classes=["bag"])


def _write_idx(path: Path, arr: np.ndarray, magic: bytes | None = None) -> None:
    header = magic or bytes([0, 0, 8, arr.ndim])
    header += b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def _fake_fmnist(folder: Path, n: int = 20) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for img_name, lab_name in fm.FILES.values():
        _write_idx(folder / f"{img_name}.gz", noise(n, 28 * 28, None).reshape(n, 28, 28))
        _write_idx(folder / f"{lab_name}.gz", np.arange(n) % 10)


def test_idx_reader_with_data_dir(tmp_path: Path) -> None:
    _fake_fmnist(tmp_path)
    s = load_images("fashion-mnist", data_dir=str(tmp_path), split="test", resolution=32)
    assert s.images.shape == (20, 1, 32, 32) and s.counts() == [2] * 10


def test_idx_reader_rejects_corrupt_files(tmp_path: Path) -> None:
    _fake_fmnist(tmp_path)
    bad = tmp_path / "train-images-idx3-ubyte.gz"
    _write_idx(bad, noise(20, 28 * 28, None).reshape(20, 28, 28), magic=b"\x00\x00\x0d\x03")
    with pytest.raises(DataError, match=f"{bad}: not an idx file"):
        load_images("fashion-mnist", data_dir=str(tmp_path))
    with gzip.open(bad, "wb") as f:  # header says 20 images, data holds fewer
        f.write(bytes([0, 0, 8, 3]) + struct.pack(">III", 20, 28, 28) + b"\0" * 100)
    with pytest.raises(DataError, match=f"{bad}: corrupt idx file"):
        load_images("fashion-mnist", data_dir=str(tmp_path))
    bad.write_bytes(b"this is not gzip")
    with pytest.raises(DataError, match=f"{bad}: corrupt or unreadable"):
        load_images("fashion-mnist", data_dir=str(tmp_path))


def test_fashion_mnist_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"Fashion-MNIST not found in {tmp_path}.*apt-get install"):
        load_images("fashion-mnist", data_dir=str(tmp_path))
    with pytest.raises(DataError, match="unknown split 'val'"):
        load_images("fashion-mnist-mini", split="val")


@pytest.mark.skipif(not DEBIAN_FMNIST.exists(), reason="dataset-fashion-mnist not installed")
def test_full_fashion_mnist_test_split() -> None:
    s = load_images("fashion-mnist", split="test")
    assert s.images.shape == (10000, 1, 32, 32) and s.counts() == [1000] * 10


def test_load_from_config() -> None:
    cfg = DataConfig(
        source="fashion-mnist-mini", resolution=16, channels=3, per_class=4, classes=["bag", "coat"]
    )
    train = load_from_config(cfg, seed=2)
    assert train.images.shape == (8, 3, 16, 16) and train.class_names == ["bag", "coat"]
    assert load_from_config(cfg, split="test").counts() == [100, 100]  # per_class limits train only


# ---------------------------------------------------------------- check-data


def test_check_data_report(messy_folder: Path) -> None:
    (messy_folder / "beta" / "ok_copy.png").write_bytes((messy_folder / "beta" / "ok0.png").read_bytes())
    r = check_data(str(messy_folder), resolution=32, channels=1, batch_size=64, per_class=3)
    assert r.ok, r.problems
    assert r.counts() == {"alpha": 13, "beta": 4}
    beta = r.classes[1]
    assert len(beta.skipped) == 6 and len(beta.duplicates) == 1
    assert r.modes()["I;16"] == 2 and r.sizes()["20x20"] >= 3
    text = r.format()
    needles = ("alpha", "beta", "truncated.png", "duplicate", "colour image", "batch size 64", "Result: OK")
    for needle in needles:
        assert needle in text, needle
    assert not check_data(str(messy_folder), per_class=5).ok


def test_check_data_problems(tmp_path: Path, make_imagefolder) -> None:
    assert not check_data(str(tmp_path / "missing")).ok
    make_imagefolder(tmp_path / "train", classes=("a", "b"), per_class=3)
    make_imagefolder(tmp_path / "test", classes=("a",), per_class=1)
    (tmp_path / "train" / "c").mkdir()
    (tmp_path / "test" / "a" / "leak.png").write_bytes((tmp_path / "train" / "b" / "0000.png").read_bytes())
    r = check_data(str(tmp_path))
    assert not r.ok
    joined = "\n".join(r.problems)
    assert "class folder 'c' has no images" in joined and "class folders differ" in joined
    assert any("leak" in w for w in r.warnings), r.warnings
    assert "Result: FAILED" in r.format()


def test_check_builtin() -> None:
    r = check_data("fashion-mnist-mini")
    assert r.ok and r.total == 3000
