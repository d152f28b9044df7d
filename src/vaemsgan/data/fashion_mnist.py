"""Fashion-MNIST: the idx .gz files (Debian `dataset-fashion-mnist`) and the embedded mini subset.

Both give 28 x 28 uint8 images; `to_resolution` pads (32) or resizes them, vectorised on the whole tensor.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from vaemsgan.errors import DataError
from vaemsgan.utils.io import open_regular

FASHION_MNIST_CLASSES = [
    "t-shirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
]
DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist/"
MINI_PATH = Path(__file__).parent / "assets" / "fashion_mnist_mini.npz"

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
EXPECTED_COUNT = {"train": 60000, "test": 10000}


def _check_split(split: str, source: str) -> str:
    if split not in FILES:
        raise DataError(f"{source}: unknown split '{split}' (use train or test)")
    return split


MAX_IDX_BYTES = 1 << 30  # the largest Fashion-MNIST file is 47,040,016 bytes


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read an idx file (gzip or raw) of unsigned bytes with `ndim` dimensions; DataError if corrupt."""
    path = Path(path)
    try:
        # A regular file only (a FIFO or device would block or never end), read to a bound: a small
        # .gz can inflate to any size.
        with open_regular(path) as raw:
            if path.suffix == ".gz":
                with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                    data = f.read(MAX_IDX_BYTES + 1)
            else:
                data = raw.read(MAX_IDX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(f"{path}: corrupt or unreadable idx file ({exc.strerror or exc})") from exc
    if len(data) > MAX_IDX_BYTES:
        raise DataError(f"{path}: idx file holds more than {MAX_IDX_BYTES >> 20} MiB (Fashion-MNIST: 45 MiB)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: corrupt idx file (only {len(data)} bytes, shorter than its header)")
    # magic = 0x00 0x00 <type 0x08 = unsigned byte> <ndim>
    if data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] != ndim:
        raise DataError(
            f"{path}: not an idx file of {ndim}-d unsigned bytes (magic {data[:4].hex()}, "
            f"expected 000008{ndim:02x})"
        )
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    size = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != size:
        raise DataError(
            f"{path}: corrupt idx file (header says {'x'.join(map(str, dims))} = {size} bytes, "
            f"found {len(data) - header})"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find(data_dir: Path, name: str) -> Path | None:
    # The Debian package ships .gz; torchvision-style raw folders also hold the uncompressed files.
    for candidate in (data_dir / f"{name}.gz", data_dir / name):
        if candidate.exists() and not candidate.is_dir():  # a FIFO or device here: read_idx says so
            return candidate
    return None


def load_fashion_mnist(
    split: str = "train", data_dir: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N x 28 x 28 uint8) and labels (N int64) of one split from the idx files in `data_dir`."""
    _check_split(split, "fashion-mnist")
    folder = Path(data_dir or DEFAULT_DATA_DIR)
    names = FILES[split]
    paths = [_find(folder, n) for n in names]
    missing = [f"{n}.gz" for n, p in zip(names, paths, strict=True) if p is None]
    if missing:
        raise DataError(
            f"Fashion-MNIST not found in {folder} (missing {', '.join(missing)}): install it with "
            "`apt-get install dataset-fashion-mnist` or pass --data-dir with the four idx .gz files"
        )
    images = read_idx(paths[0], 3)
    labels = read_idx(paths[1], 1)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{paths[0]}: images are {images.shape[1]}x{images.shape[2]}, Fashion-MNIST is 28x28")
    if len(images) != len(labels):
        raise DataError(f"{paths[1]}: {len(labels)} labels for {len(images)} images in {paths[0]}")
    if labels.size and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise DataError(f"{paths[1]}: label {int(labels.max())} out of range 0-9")
    # frombuffer arrays are read-only: copy into torch-owned memory.
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def load_mini(split: str = "train", path: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The embedded subset: 200 train / 100 test images per class, 28 x 28 uint8."""
    _check_split(split, "fashion-mnist-mini")
    path = Path(path) if path else MINI_PATH
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels = z[f"x_{split}"], z[f"y_{split}"]
    except (OSError, KeyError, ValueError, zlib.error) as exc:
        raise DataError(
            f"{path}: embedded Fashion-MNIST subset is missing or corrupt ({exc}); reinstall vaemsgan"
        ) from exc
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)), torch.from_numpy(
        labels.astype(np.int64)
    )


def to_resolution(images: torch.Tensor, resolution: int, channels: int, chunk: int = 8192) -> torch.Tensor:
    """N x 1 x 28 x 28 (or N x 28 x 28) uint8 -> N x channels x R x R uint8.

    32: 2 px of black background on each side (the usual MNIST-to-32 framing, pixels unchanged).
    Other sizes: antialiased bilinear resize of the whole 28 x 28.
    """
    if images.dim() == 3:
        images = images[:, None]
    n, _, h, w = images.shape
    if resolution == h == w:
        out = images
    elif h == w == 28 and resolution == 32:
        out = F.pad(images, (2, 2, 2, 2), value=0)
    else:
        try:
            # torch's native uint8 path (antialiased bilinear, CPU): 3x faster than via float.
            out = F.interpolate(
                images, size=(resolution, resolution), mode="bilinear", align_corners=False, antialias=True
            )
        except (RuntimeError, NotImplementedError):
            out = torch.empty((n, 1, resolution, resolution), dtype=torch.uint8)
            for i in range(0, n, chunk):
                y = F.interpolate(
                    images[i : i + chunk].float(),
                    size=(resolution, resolution),
                    mode="bilinear",
                    align_corners=False,
                    antialias=True,
                )
                out[i : i + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
    if channels == 3:
        out = out.expand(-1, 3, -1, -1)
    return out.contiguous()
