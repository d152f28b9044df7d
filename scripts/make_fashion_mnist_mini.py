"""Write src/vaemsgan/data/assets/fashion_mnist_mini.npz: a fixed subset of Fashion-MNIST.

200 train and 100 test images per class, drawn with numpy seed 0 from the Debian idx files, kept in
their original order. The zip is written with fixed timestamps so the file is byte-for-byte reproducible.

    .venv/bin/python scripts/make_fashion_mnist_mini.py [--data-dir DIR] [--out PATH]
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

from vaemsgan.data.fashion_mnist import DEFAULT_DATA_DIR, FASHION_MNIST_CLASSES, MINI_PATH, load_fashion_mnist

PER_CLASS = {"train": 200, "test": 100}
SEED = 0


def pick(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n seeded indices per class, sorted (original order)."""
    k = len(FASHION_MNIST_CLASSES)
    idx = [rng.choice(np.flatnonzero(labels == c), size=n, replace=False) for c in range(k)]
    return np.sort(np.concatenate(idx))


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez_compressed, but with a fixed zip timestamp (np.savez stamps the current time)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            data = io.BytesIO()
            np.lib.format.write_array(data, np.ascontiguousarray(arr), allow_pickle=False)
            zf.writestr(info, data.getvalue(), compresslevel=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    ap.add_argument("--out", type=Path, default=MINI_PATH)
    args = ap.parse_args()
    rng = np.random.default_rng(SEED)
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        x, y = load_fashion_mnist(split, args.data_dir)
        keep = pick(y.numpy(), PER_CLASS[split], rng)
        arrays[f"x_{split}"] = x.numpy()[keep]
        arrays[f"y_{split}"] = y.numpy()[keep].astype(np.uint8)
    arrays["classes"] = np.array(FASHION_MNIST_CLASSES)
    write_npz(args.out, arrays)
    print(
        f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): "
        + ", ".join(f"{k} {v.shape}" for k, v in arrays.items())
    )


if __name__ == "__main__":
    main()
