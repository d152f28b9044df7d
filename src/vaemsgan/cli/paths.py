"""Outputs that would damage inputs, and folders a failed command would leave behind.

`refuse_nested` is called by `main` for every command before it runs: an output folder inside an input
folder (or the other way round) is refused before anything is created. `missing_dirs` lists the folders a
command may create for its output; after a failure `remove_empty` removes those that hold no file.
"""

from __future__ import annotations

import os
from pathlib import Path

from vaemsgan.errors import ConfigError


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(os.fspath(path))))


def refuse_nested(out_flag: str, out: str | os.PathLike, inputs: dict[str, str | os.PathLike | None]) -> None:
    """ConfigError if `out` is, is inside or contains one of the input paths (links resolved)."""
    from vaemsgan.data.dataset import BUILTIN_SOURCES

    o = _real(out)
    for flag, src in inputs.items():
        if src is None or (os.fspath(src) in BUILTIN_SOURCES and not os.path.isdir(src)):
            continue
        s = _real(src)
        if o == s:
            raise ConfigError(
                f"{out_flag} {out}: is the same folder as {flag} {src}: outputs would mix with (or overwrite) "
                "the inputs; choose a folder outside it"
            )
        if s in o.parents:
            raise ConfigError(
                f"{out_flag} {out}: is inside {flag} {src}: outputs would be written among the inputs "
                "(and read as inputs by the next run); choose a folder outside it"
            )
        if o in s.parents:
            raise ConfigError(
                f"{out_flag} {out}: contains {flag} {src}: --force would write over or remove the inputs; "
                "choose a folder that does not hold them"
            )


def missing_dirs(path: str | os.PathLike) -> list[Path]:
    """`path` and its ancestors that do not exist yet, deepest first."""
    p = Path(os.path.abspath(os.fspath(path)))
    out = []
    while not os.path.lexists(p) and p != p.parent:
        out.append(p)
        p = p.parent
    return out


def remove_empty(created: list[Path]) -> None:
    """Remove each folder of `created` (deepest first) that holds no file, only empty folders or nothing."""
    for d in created:
        if not d.is_dir() or d.is_symlink():
            continue
        try:
            if any(f for _, _, f in os.walk(d)):
                continue
            for root, dirs, _ in os.walk(d, topdown=False):
                for name in dirs:
                    os.rmdir(os.path.join(root, name))
            os.rmdir(d)
        except OSError:
            continue
