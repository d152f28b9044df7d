"""Progress bars that suit both a terminal and a log file.

On a terminal a bar redraws in place (tqdm's defaults). When the stream is not a terminal (CI, nohup, a
redirected log) every redraw would become a line of the log, so the bar there prints a plain line at
most every `LOG_INTERVAL_S` seconds (and a last line when it ends) instead of one per step.
Every progress bar of vaemsgan goes through `progress_bar`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import IO, Any

from tqdm import tqdm

LOG_INTERVAL_S = 10.0


def is_terminal(stream: Any) -> bool:
    """True when `stream` is an interactive terminal; False for files, pipes and closed streams."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


class LineWriter:
    """Wraps a non-terminal stream for tqdm: each in-place redraw ('\\r' + status + padding) becomes one
    line; the bare '\\r' / '\\n' tqdm writes to move the cursor are dropped."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def write(self, s: str) -> int:
        line = s.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")
        return len(s)

    def flush(self) -> None:
        flush = getattr(self.stream, "flush", None)
        if flush is not None:
            flush()

    def isatty(self) -> bool:
        return False


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    file: IO[str] | None = None,
    log_interval: float = LOG_INTERVAL_S,
    **kwargs: Any,
) -> tqdm:
    """`tqdm(iterable, **kwargs)` writing to `file` (default stderr); when that is not a terminal, one
    plain line at most every `log_interval` seconds (an explicit `mininterval` in kwargs still wins)."""
    stream = sys.stderr if file is None else file
    if is_terminal(stream):
        return tqdm(iterable, file=stream, **kwargs)
    kwargs.setdefault("mininterval", log_interval)
    kwargs["dynamic_ncols"] = False  # no terminal to measure
    return tqdm(iterable, file=LineWriter(stream), **kwargs)
