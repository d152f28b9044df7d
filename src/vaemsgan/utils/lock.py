"""One owner per output folder: an OS-level lock on the folder itself, held for the length of a command.

`folder_lock(path, what)` creates the folder if needed, then takes an exclusive `flock` on the folder's own
file descriptor (no lock file: nothing is left in the folder, and nothing stale after a kill -9, since the
kernel drops the lock with the process). A second vaemsgan process on the same folder is refused in one line
that names the holder's PID (read from /proc/locks on Linux). Re-entrant within a process: a command that
locks a folder it already holds (an experiment training a run it planned) just goes on. Where `flock` does
not exist (not POSIX) the lock is a no-op.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vaemsgan.errors import OutputExistsError, VaemsganError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_held: dict[str, tuple[int, int]] = {}  # real path -> (fd, depth)


def holder_pid(path: str | os.PathLike) -> int | None:
    """The PID holding a flock on `path` (its inode, per /proc/locks), or None when unknown."""
    try:
        st = os.stat(path)
        with open("/proc/locks") as f:
            for line in f:
                parts = line.split()
                # "1: FLOCK  ADVISORY  WRITE 12345 fd:01:1234567 0 EOF" (blocked waiters have a "->" field)
                if "->" in parts or len(parts) < 6 or parts[1] != "FLOCK":
                    continue
                dev_inode = parts[5].split(":")
                if len(dev_inode) == 3 and int(dev_inode[2]) == st.st_ino:
                    return int(parts[4])
    except (OSError, ValueError):
        return None
    return None


@contextmanager
def folder_lock(path: str | os.PathLike, what: str = "output folder") -> Iterator[Path]:
    """Hold an exclusive lock on the folder `path` (created if missing) while the block runs."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputExistsError(f"{path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VaemsganError(f"{path}: cannot create {what} ({exc.strerror or exc})") from exc
    key = os.path.realpath(path)
    if fcntl is None:
        yield path
        return
    if key in _held:
        fd, depth = _held[key]
        _held[key] = (fd, depth + 1)
    else:
        fd = os.open(key, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = holder_pid(key)
            holder = f"PID {pid}" if pid is not None else "another process"
            raise OutputExistsError(
                f"{path}: {what} is in use by another vaemsgan process ({holder}); wait for it to finish, or "
                "choose another folder"
            ) from None
        _held[key] = (fd, 1)
    try:
        yield path
    finally:
        fd, depth = _held[key]
        if depth > 1:
            _held[key] = (fd, depth - 1)
        else:
            del _held[key]
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


@contextmanager
def exclusive_file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on the file `path` (created if missing) while the block runs, waiting for any
    other holder: for short read-merge-write sections that several processes share (unlike `folder_lock`,
    which refuses a folder another process works in)."""
    with _file_flock(path, wait=True):
        yield


def file_lock_if_free(path: str | os.PathLike) -> contextlib.AbstractContextManager[int | None]:
    """Hold an exclusive lock on the file `path` (created if missing) while the block runs if no other process
    holds it: yields None when taken, else the holder's PID (0 when unknown), and then holds nothing. For work
    that parallel workers share out among themselves (one evaluates a snapshot, the others go on to the next)."""
    return _file_flock(path, wait=False)


@contextmanager
def _file_flock(path: str | os.PathLike, wait: bool) -> Iterator[int | None]:
    """An exclusive flock on the file `path` (created if missing): None while held; without `wait`, the
    holder's PID (0 when unknown) instead when another process holds it, and nothing is held."""
    if fcntl is None:
        yield None
        return
    fd = os.open(os.fspath(path), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield holder_pid(path) or 0
            return
        try:
            yield None
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
