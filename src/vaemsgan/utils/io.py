"""File I/O: atomic writes (a temp file in the same folder, fsync, rename: a crash leaves old or new, never
half), and reads that refuse FIFOs, sockets and devices and are bounded in size before they start."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import math
import os
import re
import stat
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from PIL import Image

from vaemsgan.errors import OutputExistsError, VaemsganError

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_kind(mode: int) -> str:
    """'a FIFO (named pipe)', 'a character device', ... for the st_mode of something that is not a file."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


class NotRegularFileError(OSError):
    """A path that is a FIFO, socket, device or folder (or a link to one) where a file was expected."""

    def __init__(self, path: str | os.PathLike, mode: int, link: bool = False) -> None:
        via = " (through a link)" if link else ""
        super().__init__(errno.EINVAL, f"not a regular file: {file_kind(mode)}{via}", os.fspath(path))


def check_regular(path: str | os.PathLike) -> os.stat_result:
    """The stat of `path` (links followed); NotRegularFileError if it is not a regular file, OSError if
    it cannot be reached (missing, broken link, link loop, permission). Nothing is opened, so a device
    (a tape that rewinds, a terminal) is never touched."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(path, st.st_mode, os.path.islink(path))
    return st


def open_regular(path: str | os.PathLike) -> BinaryIO:
    """Open a regular file for reading, never blocking: a FIFO, socket or device (or a link to one) is
    refused with NotRegularFileError, checked before opening and again on the opened descriptor (the
    path may be swapped in between)."""
    check_regular(path)
    flags = (
        os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    )
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(path, st.st_mode)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class FileTooLargeError(OSError):
    """A file over a size limit, refused before it is read."""


def read_bounded(path: str | os.PathLike, limit: int, what: str = "file", how: str = "") -> bytes:
    """The bytes of a regular file of at most `limit` bytes; FileTooLargeError (before reading) if it is
    longer, NotRegularFileError for a FIFO, socket or device. Reads at most limit + 1 bytes whatever the
    size the file claims (a file can grow while it is read)."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        data = f.read(limit + 1) if size <= limit else b""
        if size > limit or len(data) > limit:
            raise FileTooLargeError(
                errno.EFBIG,
                f"{what} is larger than the {_size(limit)} limit ({_size(max(size, len(data)))}){how}",
                os.fspath(path),
            )
        return data


def _size(n: int) -> str:
    for unit, k in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << k:
            return f"{n / (1 << k):.4g} {unit}"
    return f"{n} bytes"


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], fsync: bool = True) -> Path:
    """Call `write(file)` on a temp file beside `path`, fsync it, then rename it over `path`.

    `fsync=False` keeps the rename's atomicity (never a half file under the final name) but skips the
    flush to disk: for thousands of small generated images, where a power cut may cost a rerun only."""
    path = Path(path)
    try:
        # Errors name `path`, the file the user knows, never the temp file (or its folder) behind it.
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise VaemsganError(
            f"{path}: could not write ({exc.strerror or exc}); nothing was overwritten"
        ) from exc
    try:
        # mkstemp makes the file owner-only (0600); give it the permissions a plain open() would.
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise VaemsganError(
                f"{path}: could not write ({exc.strerror or exc}); nothing was overwritten"
            ) from exc
        raise
    if fsync:
        _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def json_safe(obj: Any) -> Any:
    """A JSON-safe copy: NaN/inf -> None, tuples -> lists, numpy/torch scalars -> Python numbers."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    scalar_array = isinstance(obj, np.ndarray) and obj.ndim == 0
    if isinstance(obj, np.generic) or scalar_array or (isinstance(obj, torch.Tensor) and obj.numel() == 1):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def save_png(path: str | os.PathLike, image: np.ndarray, fsync: bool = True) -> Path:
    """Save an HxW or HxWxC uint8 array as PNG, atomically."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    pil = Image.fromarray(np.ascontiguousarray(image))
    return atomic_write(path, lambda f: pil.save(f, format="PNG"), fsync=fsync)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def prepare_output_dir(path: str | os.PathLike, force: bool, what: str = "output folder") -> Path:
    """Create `path`, refusing a non-empty existing one unless `force` (then files are overwritten one by one)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path}: exists and is not a folder")
    if path.is_dir() and any(path.iterdir()) and not force:
        raise OutputExistsError(f"{path}: {what} exists and is not empty; use --force to write into it")
    return ensure_writable_dir(path, what)


def ensure_writable_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Create `path` and prove it takes a file, by writing one: os.access says yes to root on a
    read-only mount, and a late failure would cost a whole training run."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VaemsganError(f"{path}: cannot create {what} ({exc.strerror or exc})") from exc
    try:
        fd, probe = tempfile.mkstemp(prefix=".vaemsgan-write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise VaemsganError(f"{path}: {what} is not writable ({exc.strerror or exc})") from exc
    return path


def step_records(path: str | os.PathLike) -> list[tuple[str, dict[str, Any]]]:
    """The (line, record) pairs of an append-only step log (metrics.jsonl) whose record is an object with
    an integer "step"; anything else (a half line left by a crash) is skipped. No file: none."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), int):
            out.append((line, rec))
    return out


def trim_jsonl(path: str | os.PathLike, max_step: int) -> None:
    """Keep the records of an append-only log up to `max_step`, atomically.

    After a crash the log may end in a half line, and records past the checkpoint a resumed run
    will write again; both go, so the log reads as if the run had never stopped."""
    if not Path(path).is_file():
        return
    kept = [line for line, rec in step_records(path) if rec["step"] <= max_step]
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))


# Word characters (any script), digits, and . _ + - space; everything else (separators, control
# characters, quotes, wildcards) becomes '_'.
_UNSAFE = re.compile(r"[^\w.+ -]")
MAX_NAME = 100


def safe_name(name: str) -> str:
    """A class name as a single safe path component: no separators, no '..', no hidden or empty names."""
    # Exactly the name's own spelling (NFC or NFD: generated folders must match the data set's byte for
    # byte); combining marks are kept (an NFD accent is one), other unsafe characters become '_'.
    cleaned = "".join(
        ch if unicodedata.category(ch).startswith("M") else _UNSAFE.sub("_", ch) for ch in str(name)
    )
    # Leading dots hide a folder (or make '..'); trailing dots and spaces are dropped by some filesystems.
    cleaned = cleaned.strip(" .")[:MAX_NAME].strip(" .")
    return cleaned or "_"


def safe_names(names: list[str]) -> dict[str, str]:
    """Distinct safe folder names for distinct class names ('a/b' and 'a_b' must not share a folder)."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in names:
        base = safe_name(name)
        folder, k = base, 2
        # Case-insensitive filesystems would merge 'A' and 'a', normalising ones (macOS) NFC and NFD.
        while unicodedata.normalize("NFC", folder).lower() in used:
            folder, k = f"{base}-{k}", k + 1
        used.add(unicodedata.normalize("NFC", folder).lower())
        out[name] = folder
    return out
