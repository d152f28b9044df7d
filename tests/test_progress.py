"""Progress bars: redraws on a terminal, a line every few seconds at most in a log (issue 13)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from vaemsgan.utils import progress
from vaemsgan.utils.progress import LOG_INTERVAL_S, is_terminal, progress_bar


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(stream: io.StringIO, steps: int, seconds_per_step: float) -> None:
    """`steps` updates of a bar on `stream` under a fake clock advancing `seconds_per_step` per step."""
    bar = progress_bar(total=steps, file=stream, desc="train", unit="step")
    now = [bar.start_t]
    bar._time = lambda: now[0]
    for _ in range(steps):
        now[0] += seconds_per_step
        bar.update(1)
    bar.close()


def test_log_stream_gets_a_line_per_interval_not_per_step() -> None:
    log = io.StringIO()
    _run(log, steps=600, seconds_per_step=0.5)  # 300 s of training
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert all(line.startswith("train:") for line in lines)
    # A first line, one per 10 s interval, a last one: ~32, far fewer than 600 steps.
    assert 300 / LOG_INTERVAL_S <= len(lines) <= 300 / LOG_INTERVAL_S + 3
    assert re.search(r"600/600", lines[-1])


def test_fast_loop_in_a_log_prints_first_and_last_line_only() -> None:
    log = io.StringIO()
    _run(log, steps=10_000, seconds_per_step=0.0001)  # 1 s in all
    lines = log.getvalue().splitlines()
    assert len(lines) == 2 and "10000/10000" in lines[-1]


def test_terminal_keeps_redrawing_in_place() -> None:
    term = FakeTerminal()
    _run(term, steps=600, seconds_per_step=0.5)
    out = term.getvalue()
    # tqdm's terminal default (0.1 s) redraws at every one of these slow steps, with carriage returns.
    assert out.count("\r") >= 600
    assert out.count("\n") <= 1


def test_explicit_mininterval_wins_and_disable_prints_nothing() -> None:
    bar = progress_bar(total=3, file=io.StringIO(), mininterval=2.0)
    assert bar.mininterval == 2.0
    bar.close()
    quiet = io.StringIO()
    bar = progress_bar(range(5), file=quiet, disable=True)
    assert list(bar) == list(range(5)) and quiet.getvalue() == ""


def test_default_stream_is_stderr_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = io.StringIO()
    monkeypatch.setattr("sys.stderr", fake)
    bar = progress_bar(total=2, desc="x")
    assert bar.mininterval == LOG_INTERVAL_S
    bar.update(2)
    bar.close()
    assert "2/2" in fake.getvalue()


def test_is_terminal_handles_odd_streams(tmp_path: Path) -> None:
    assert is_terminal(FakeTerminal())
    assert not is_terminal(io.StringIO())
    assert not is_terminal(object())
    f = (tmp_path / "log.txt").open("w")
    f.close()
    assert not is_terminal(f)  # closed: ValueError inside, answered False


def test_every_progress_bar_goes_through_the_helper() -> None:
    src = Path(progress.__file__).resolve().parents[1]
    users = sorted(
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if "tqdm" in p.read_text() and p.name != "progress.py"
    )
    assert users == []
