"""Reliability round 2 (issue 14), families 2-4: files that are not regular files, resources bounded
before decoding or reading, and outputs that would damage inputs; plus the small fixes of the issue.

File kinds are made for real on Linux: FIFOs (os.mkfifo), sockets (a bound AF_UNIX socket), and links to
the character devices /dev/zero and /dev/null (creating a device node needs root). Anything that could
block runs under `within`, so a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import re
import socket
import struct
import sys
import tempfile
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFile

from vaemsgan.cli.main import main
from vaemsgan.data import check_data, load_images
from vaemsgan.data.imagefolder import SkipImage, decoded_bytes, open_image, pixel_bytes
from vaemsgan.errors import CheckpointError, DataError
from vaemsgan.limits import DEFAULT_MAX_IMAGE_MB, LIMITS
from vaemsgan.utils.io import NotRegularFileError, open_regular

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="file kinds of Linux")

TINY = [
    "--resolution", "16", "--threads", "1", "--batch-size", "4", "--no-progress", "--device", "cpu",
    "--set", "model.g_width=8", "--set", "model.d_width=8", "--set", "model.e_width=8",
    "--set", "model.latent_dim=8",
]  # fmt: skip


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """fn() in a daemon thread; fails (instead of hanging) if it has not returned after `seconds`."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        pytest.fail(f"blocked for more than {seconds} s (a FIFO or device was opened or read)")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def cli(capsys: pytest.CaptureFixture[str], *argv: object, timeout: float = 60) -> tuple[int, str, str]:
    def run() -> int:
        try:
            return main([str(a) for a in argv])
        except SystemExit as exc:
            return int(exc.code or 0)

    rc = within(timeout, run)
    out, err = capsys.readouterr()
    return rc, out, err


def one_line(rc: int, err: str, *needles: str) -> str:
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("vaemsgan: error: ") and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A folder with a short path: AF_UNIX socket paths are limited to 107 bytes."""
    d = Path(tempfile.mkdtemp(prefix="vk", dir="/tmp"))
    yield d
    for p in sorted(d.rglob("*"), key=lambda p: -len(p.parts)):
        p.unlink() if (p.is_symlink() or not p.is_dir()) else p.rmdir()
    d.rmdir()


def make_socket(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()  # the socket file stays


def odd_files(folder: Path) -> dict[str, str]:
    """Every kind of non-regular file, named like images, in `folder`: name -> what the reason says."""
    os.mkfifo(folder / "fifo.png")
    make_socket(folder / "sock.png")
    os.symlink("/dev/zero", folder / "zero.png")
    os.symlink("/dev/null", folder / "null.jpg")
    os.symlink(folder / "fifo.png", folder / "link-to-fifo.png")
    os.symlink(folder / "sock.png", folder / "link-to-sock.png")
    return {
        "fifo.png": "not a regular file: a FIFO (named pipe)",
        "sock.png": "not a regular file: a socket",
        "zero.png": "not a regular file: a character device (through a link)",
        "null.jpg": "not a regular file: a character device (through a link)",
        "link-to-fifo.png": "not a regular file: a FIFO (named pipe) (through a link)",
        "link-to-sock.png": "not a regular file: a socket (through a link)",
    }


@pytest.fixture
def odd_folder(short_dir: Path, make_imagefolder) -> tuple[Path, dict[str, str]]:
    root = make_imagefolder(short_dir / "d", classes=("a", "b"), per_class=4, size=(16, 16), mode="L")
    return root, odd_files(root / "a")


# ---------------------------------------------------------------- family 2: files that are not files


def test_open_regular_refuses_every_kind_without_blocking(odd_folder: tuple[Path, dict[str, str]]) -> None:
    root, kinds = odd_folder
    for name, reason in kinds.items():
        with pytest.raises(NotRegularFileError) as info:
            within(5, lambda name=name: open_regular(root / "a" / name))
        assert info.value.strerror == reason and info.value.filename == str(root / "a" / name)
    with pytest.raises(NotRegularFileError, match="a folder"):
        open_regular(root / "a")
    with open_regular(root / "a" / "0000.png") as f:
        assert f.read(4) == b"\x89PNG"


def test_loader_skips_every_kind_with_its_reason(odd_folder: tuple[Path, dict[str, str]]) -> None:
    root, kinds = odd_folder
    s = within(30, lambda: load_images(str(root), resolution=16))
    assert s.counts() == [4, 4]
    reasons = {Path(f).name: r for f, r in s.skipped}
    assert reasons == kinds
    with pytest.raises(DataError, match=r"fifo\.png: not a regular file: a FIFO \(named pipe\) \(strict"):
        within(30, lambda: load_images(str(root), resolution=16, strict=True))


def test_train_and_check_data_skip_them(
    odd_folder: tuple[Path, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, kinds = odd_folder
    rc, out, err = cli(capsys, "check-data", root)
    assert rc == 0, out + err
    for name, reason in kinds.items():
        assert f"{name}: {reason}" in out
    rc, out, err = cli(capsys, "train", "--data", root, "--out", tmp_path / "run", "--steps", "1", *TINY)
    assert rc == 0, err
    assert "note: skipped 6 unreadable or non-image files" in out


def test_evaluate_reads_no_odd_file(short_dir: Path, make_imagefolder) -> None:
    """The generated folder's manifest and the first image (format sniffing) may be FIFOs too."""
    from vaemsgan.evaluation.inputs import load_generated_dir, peek_format

    gen = short_dir / "gen"
    (gen / "a").mkdir(parents=True)
    os.mkfifo(gen / "a" / "000.png")  # sorted first: what peek_format would open
    make_imagefolder(gen, classes=("a", "b"), per_class=2, size=(16, 16), mode="L")
    os.mkfifo(gen / "manifest.json")
    assert within(10, lambda: peek_format(gen)) == (16, 1)
    s = within(10, lambda: load_generated_dir(gen, 16, 1))
    assert s.counts() == [2, 2] and "FIFO" in dict(s.skipped)[str(gen / "a" / "000.png")]


@pytest.mark.parametrize("kind", ["fifo", "socket", "dev-zero", "link-to-fifo", "folder"])
def test_config_that_is_not_a_file_is_one_line(
    kind: str, short_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = short_dir / "c.yaml"
    if kind == "fifo":
        os.mkfifo(cfg)
    elif kind == "socket":
        make_socket(cfg)
    elif kind == "dev-zero":
        os.symlink("/dev/zero", cfg)
    elif kind == "link-to-fifo":
        os.mkfifo(short_dir / "f")
        os.symlink(short_dir / "f", cfg)
    else:
        cfg.mkdir()
    rc, _, err = cli(
        capsys, "train", "--data", "fashion-mnist-mini", "--out", tmp_path / "o", "--config", cfg
    )
    one_line(rc, err, f"{cfg}: cannot read config (not a regular file: ")
    assert not (tmp_path / "o").exists()


def test_checkpoint_and_idx_files_that_are_not_files(
    short_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vaemsgan.checkpoint import load_checkpoint, load_latest_valid
    from vaemsgan.data import fashion_mnist as fm

    os.mkfifo(short_dir / "c.pt")
    rc, _, err = cli(
        capsys, "generate", "--checkpoint", short_dir / "c.pt", "--per-class", 1, "--out", tmp_path / "g"
    )
    one_line(rc, err, "c.pt: cannot read checkpoint (not a regular file: a FIFO (named pipe))")
    run = short_dir / "run"
    (run / "checkpoints").mkdir(parents=True)
    os.symlink("/dev/zero", run / "checkpoints" / "step-0000001.pt")
    warnings: list[str] = []
    assert within(10, lambda: load_latest_valid(run, warn=warnings.append)) is None
    assert "not a regular file: a character device" in warnings[0]
    with pytest.raises(CheckpointError, match="not a regular file"):
        within(10, lambda: load_checkpoint(run / "checkpoints" / "step-0000001.pt"))
    fdir = short_dir / "fm"
    fdir.mkdir()
    for name in fm.FILES["train"]:
        os.mkfifo(fdir / f"{name}.gz")
    with pytest.raises(
        DataError, match=r"idx3-ubyte\.gz: corrupt or unreadable idx file \(not a regular file"
    ):
        within(10, lambda: fm.load_fashion_mnist("train", str(fdir)))


def test_idx_bomb_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small .gz that inflates without end is read to the bound, not to the end."""
    import gzip

    from vaemsgan.data import fashion_mnist as fm

    monkeypatch.setattr(fm, "MAX_IDX_BYTES", 1 << 20)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as f:
        for _ in range(8):
            f.write(b"\0" * (1 << 20))
    with pytest.raises(DataError, match="holds more than 1 MiB"):
        fm.read_idx(path, 3)


# ---------------------------------------------------------------- family 3: bounded before decoding


def png_header(width: int, height: int, bit_depth: int, colour_type: int) -> bytes:
    """A PNG declaring width x height in a pixel format, with (almost) no pixel data: a small file that
    would decode to width x height x bytes-per-pixel."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    plte = chunk(b"PLTE", bytes(range(48))) if colour_type == 3 else b""
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + plte
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


# (bit depth, colour type) -> the PIL mode and a canvas that fits the old pixel-count limit (16384^2)
# but decodes to more than the default 256 MiB (for 1-byte modes: a larger canvas).
PNG_BOMBS = {
    "1-bit grey": (1, 0, "1", 20000),
    "8-bit grey": (8, 0, "L", 20000),
    "16-bit grey": (16, 0, "I;16", 16000),
    "palette": (8, 3, "P", 20000),
    "grey + alpha": (8, 4, "LA", 12000),
    "RGB": (8, 2, "RGB", 12000),
    "16-bit RGB": (16, 2, "RGB", 12000),
    "RGBA": (8, 6, "RGBA", 12000),
    "16-bit RGBA": (16, 6, "RGBA", 12000),
}


@pytest.mark.parametrize("fmt", PNG_BOMBS)
def test_png_bomb_refused_from_the_header_in_every_pixel_format(
    fmt: str, tmp_path: Path, monkeypatch
) -> None:
    depth, colour, mode, side = PNG_BOMBS[fmt]
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(side, side, depth, colour))
    assert path.stat().st_size < 300

    def no_decoding(self: Image.Image) -> None:
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)  # refused from the header: nothing decoded
    with pytest.raises(SkipImage) as info:
        open_image(path)
    need = decoded_bytes(side, side, mode)
    assert need > DEFAULT_MAX_IMAGE_MB << 20
    assert str(info.value) == (
        f"image too large ({side} x {side}, {mode}: {need / 2**20:.0f} MiB decoded, over the "
        f"{DEFAULT_MAX_IMAGE_MB} MiB limit; raise it with --max-image-mb)"
    )


def _save(path: Path, mode: str, fmt: str, side: int) -> Path:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    if mode == "I;16":
        im = Image.fromarray(base[..., 0].astype(np.uint16) * 257)
    elif mode == "I":
        im = Image.fromarray(base[..., 0].astype(np.int32) * 1000)
    elif mode == "F":
        im = Image.fromarray(base[..., 0].astype(np.float32) / 255)
    else:
        im = Image.fromarray(base, "RGB").convert(mode)
    im.save(path, format=fmt)
    return path


# Every container format and pixel mode the loader takes: a limit of side^2 bytes lets a 1-byte mode
# through and refuses wider ones, so the limit counts bytes per pixel, not pixels.
FORMATS = [
    ("PNG", "1"), ("PNG", "L"), ("PNG", "P"), ("PNG", "LA"), ("PNG", "RGB"), ("PNG", "RGBA"), ("PNG", "I;16"),
    ("TIFF", "L"), ("TIFF", "I;16"), ("TIFF", "I"), ("TIFF", "F"), ("TIFF", "RGB"), ("TIFF", "CMYK"),
    ("BMP", "L"), ("BMP", "RGB"), ("GIF", "P"), ("WEBP", "RGB"), ("WEBP", "RGBA"),
    ("JPEG", "L"), ("JPEG", "RGB"), ("JPEG", "CMYK"),
]  # fmt: skip


@pytest.mark.parametrize(("fmt", "mode"), FORMATS)
def test_limit_counts_bytes_per_pixel_in_every_format(
    fmt: str, mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    side = 64
    path = _save(tmp_path / f"x.{fmt.lower()}", mode, fmt, side)
    with Image.open(path) as im:
        stored = im.mode
    monkeypatch.setattr(LIMITS, "max_image_bytes", side * side)
    if pixel_bytes(stored) == 1:
        im, info = open_image(path)
        assert (info.width, info.height) == (side, side)
        im.close()
        monkeypatch.setattr(LIMITS, "max_image_bytes", side * side - 1)
    with pytest.raises(SkipImage, match=rf"image too large \({side} x {side}, {re.escape(stored)}: "):
        open_image(path)


def test_jpeg_limit_applies_to_the_draft_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A JPEG is decoded at up to 1/8 scale for a small training resolution: the limit judges that size."""
    path = _save(tmp_path / "big.jpg", "RGB", "JPEG", 512)
    monkeypatch.setattr(LIMITS, "max_image_bytes", 128 * 128 * 4)
    with pytest.raises(SkipImage, match="image too large"):
        open_image(path)
    im, info = open_image(path, draft_size=64)
    assert (info.width, info.height) == (512, 512) and im.size[0] <= 128
    im.close()


def test_max_image_mb_option_raises_the_limit(
    tmp_path: Path, make_imagefolder, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_imagefolder(tmp_path / "d", classes=("a", "b"), per_class=3, size=(16, 16), mode="L")
    (root / "a" / "big.png").write_bytes(png_header(1000, 1000, 8, 2))  # 3.8 MiB as RGB
    monkeypatch.setattr(LIMITS, "max_image_bytes", 1 << 20)  # a 1 MiB default, to keep the test small
    rc, out, _ = cli(capsys, "check-data", root)
    assert (
        rc == 0 and "big.png: image too large (1000 x 1000, RGB: 4 MiB decoded, over the 1 MiB limit" in out
    )
    rc, out, _ = cli(capsys, "check-data", root, "--max-image-mb", "8")
    assert "image too large" not in out and "big.png: corrupt or truncated image" in out  # now decoded
    assert LIMITS.max_image_bytes == 1 << 20  # the option lasts for one command
    rc, _, err = cli(capsys, "check-data", root, "--max-image-mb", "0")
    one_line(rc, err, "argument --max-image-mb: '0' is not an integer from 1 to 1048576")


def test_config_size_checked_before_reading(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "big.yaml"
    cfg.write_text("train:\n  steps: 1\n" + "# padding\n" * 120_000)  # 1.2 MB of comments
    rc, _, err = cli(capsys, "train", "--data", "nowhere", "--out", tmp_path / "o", "--config", cfg)
    line = one_line(rc, err, f"{cfg}: config file is larger than the 1 MiB limit (1.14")
    assert line.endswith(" MiB); raise the limit with --max-config-kb")
    rc, _, err = cli(
        capsys,
        "train",
        "--data",
        "nowhere",
        "--out",
        tmp_path / "o",
        "--config",
        cfg,
        "--max-config-kb",
        "2048",
    )
    one_line(rc, err, "nowhere: no such folder")  # read and parsed: the next problem is the data
    assert not (tmp_path / "o").exists()


def test_sixteen_bit_conversion_in_row_blocks_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vaemsgan.data import imagefolder

    a = np.arange(0, 65536, dtype=np.uint16).reshape(256, 256)
    Image.fromarray(a).save(tmp_path / "g.png")
    rgba = np.random.default_rng(1).integers(0, 256, (40, 30, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "c.png")
    whole = [imagefolder.decode_file(tmp_path / n, 16, 3) for n in ("g.png", "c.png")]
    monkeypatch.setattr(imagefolder, "BLOCK_PIXELS", 7)  # many small blocks
    blocks = [imagefolder.decode_file(tmp_path / n, 16, 3) for n in ("g.png", "c.png")]
    for x, y in zip(whole, blocks, strict=True):
        assert np.array_equal(x, y)
    im = Image.open(tmp_path / "g.png")
    eight = np.asarray(imagefolder._to_8bit(im))
    assert np.array_equal(eight, np.floor(a / 257.0 + 0.5).astype(np.uint8))


# ---------------------------------------------------------------- family 4: outputs and inputs


@pytest.mark.parametrize(
    ("cmd", "layout", "needle"),
    [
        ("train", "out-in-data", "--out {out}: is inside --data {data}"),
        ("train", "data-in-out", "--out {out}: contains --data {data}"),
        ("train", "same", "--out {out}: is the same folder as --data {data}"),
        ("train-config", "out-in-data", "--out {out}: is inside data.source {data}"),
        ("evaluate", "out-in-data", "--out {out}: is inside --real {data}"),
        ("evaluate-generated", "data-in-out", "--out {out}: contains --generated {data}"),
        ("reconstruct", "same", "--out {out}: is the same folder as --input {data}"),
        ("reproduce", "out-in-data", "--out {out}: is inside --data {data}"),
    ],
)
def test_output_nested_with_input_is_refused_before_anything_is_created(
    cmd: str, layout: str, needle: str, tmp_path: Path, make_imagefolder, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_imagefolder(tmp_path / "d", classes=("a", "b"), per_class=2, size=(16, 16), mode="L")
    if layout == "data-in-out":
        out = tmp_path
    elif layout == "same":
        out = data
    else:
        out = data / "a" / "run"
    before = sorted(p for p in tmp_path.rglob("*"))
    cfg = tmp_path / "c.yaml"
    argv: list[object]
    if cmd == "train":
        argv = ["train", "--data", data, "--out", out, "--force", *TINY]
    elif cmd == "train-config":
        cfg.write_text(f"data:\n  source: {data}\n")
        before.append(cfg)
        argv = ["train", "--config", cfg, "--out", out, *TINY]
    elif cmd == "evaluate":
        argv = ["evaluate", "--real", data, "--generated", data, "--out", out]
    elif cmd == "evaluate-generated":
        argv = ["evaluate", "--real", "fashion-mnist-mini", "--generated", data, "--out", out, "--force"]
    elif cmd == "reconstruct":
        argv = ["reconstruct", "--checkpoint", "nowhere", "--input", data, "--out", out, "--force"]
    else:
        argv = ["reproduce", "table2", "--data", data, "--out", out]
    rc, _, err = cli(capsys, *argv)
    one_line(rc, err, needle.format(out=out, data=data))
    assert sorted(tmp_path.rglob("*")) == sorted(before)  # nothing created, nothing removed


def test_failed_command_leaves_no_new_empty_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = cli(
        capsys, "train", "--data", tmp_path / "missing", "--out", tmp_path / "a" / "b" / "run", *TINY
    )
    one_line(rc, err, "missing: no such folder")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "keep").mkdir()  # an existing empty folder is the user's: kept
    rc, _, _ = cli(capsys, "train", "--data", tmp_path / "missing", "--out", tmp_path / "keep", *TINY)
    assert rc == 2 and (tmp_path / "keep").is_dir()
    rc, _, err = cli(capsys, "evaluate", "--real", tmp_path / "missing", "--generated", tmp_path / "g", "--out",
                     tmp_path / "rep" / "x")  # fmt: skip
    assert rc == 2 and not (tmp_path / "rep").exists()
    rc, _, _ = cli(capsys, "reproduce", "nope", "--out", tmp_path / "res")
    assert rc == 2 and not (tmp_path / "res").exists()


def test_checkpoint_write_error_names_the_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error creating the temp file (a full or read-only folder) names step-N.pt, not .step-N.pt.xyz.tmp."""
    import errno

    from vaemsgan.checkpoint import save_checkpoint
    from vaemsgan.errors import VaemsganError
    from vaemsgan.utils import io as io_mod

    def full(*args: object, **kw: object) -> object:
        raise OSError(
            errno.ENOSPC, "No space left on device", str(tmp_path / "checkpoints" / ".step-1.pt.x.tmp")
        )

    monkeypatch.setattr(io_mod.tempfile, "mkstemp", full)
    with pytest.raises(VaemsganError) as info:
        save_checkpoint(tmp_path, {"models": {}, "ema": None}, 1, keep=3)
    msg = str(info.value)
    assert (
        msg
        == f"{tmp_path / 'checkpoints' / 'step-0000001.pt'}: could not write (No space left on device); nothing was overwritten"
    )
    assert ".tmp" not in msg


def test_check_data_conflicting_labels_fail_the_verdict(tmp_path: Path, make_imagefolder) -> None:
    root = make_imagefolder(tmp_path / "d", classes=("a", "b"), per_class=3, size=(16, 16), mode="L")
    report = check_data(str(root))
    assert report.ok
    (root / "b" / "same.png").write_bytes((root / "a" / "0000.png").read_bytes())
    report = check_data(str(root))
    assert not report.ok and "Result: FAILED (1 problem(s))" in report.format()
    assert any("conflicting labels" in p for p in report.problems)


def test_evaluate_with_too_few_images_skips_parts_and_prints_no_nan(
    tmp_path: Path, make_imagefolder, capsys: pytest.CaptureFixture[str]
) -> None:
    real = make_imagefolder(tmp_path / "real", classes=("a", "b"), per_class=2, size=(16, 16), mode="L")
    gen = make_imagefolder(tmp_path / "gen", classes=("a", "b"), per_class=1, size=(16, 16), mode="L")
    rc, out, err = cli(
        capsys, "evaluate", "--real", real, "--generated", gen, "--out", tmp_path / "rep", "--quick",
        "--classifier-steps", "2", "--domain-steps", "2", "--seeds", "1", "--no-progress",
        "--cache-dir", tmp_path / "cache", "--augmentation-gain", "--parts", "stats,features,classifier,memorisation",
    )  # fmt: skip
    assert rc == 0, err
    assert "nan" not in out.lower()
    for part, why in (
        ("features", "too few real test images per class (needs 2; 'a' has 1, 'b' has 1)"),
        ("classifier", "too few generated images per class (needs 2; 'a' has 1, 'b' has 1)"),
        ("memorisation", "too few real test images per class (needs 2; 'a' has 1, 'b' has 1)"),
    ):
        assert f"Not measured: the {part} part was skipped, {why}." in out
    metrics = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert set(metrics["skipped_parts"]) == {"features", "classifier", "memorisation"}
    assert "stats" in metrics and "augmentation_gain" in metrics
    html = (tmp_path / "rep" / "report.html").read_text()
    assert " nan" not in html.lower() and ">nan<" not in html.lower()
