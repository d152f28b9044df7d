"""Shared helpers of the benchmarks: child processes with peak RSS, medians, tables, machine info.

Every configuration runs in its own Python process (`--child JSON`), so its peak resident memory
(`ru_maxrss`) is its own and one configuration's caches do not slow or speed up the next.
`VAEMSGAN_SRC` (or `--src DIR` of run_all.py) points the children at another source tree, which is how
the "before" figures of docs/BENCHMARKS.md are measured with the same scripts.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SIZES: list[tuple[int, int]] = [(32, 1), (64, 3), (128, 3)]
PRESETS = ["default", "paper"]
BATCH = 64


def src_path() -> str:
    return os.environ.get("VAEMSGAN_SRC", str(ROOT / "src"))


def setup_child(threads: int = 0) -> None:
    """Import vaemsgan from the chosen tree and fix the thread count (physical cores by default)."""
    sys.path.insert(0, src_path())
    import torch

    if threads <= 0:
        threads = physical_cores()
    torch.set_num_threads(threads)


def physical_cores() -> int:
    """Physical cores from /sys (hyper-threads excluded); falls back to os.cpu_count()."""
    try:
        cores = set()
        for cpu in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology"):
            pkg = (cpu / "physical_package_id").read_text().strip()
            core = (cpu / "core_id").read_text().strip()
            cores.add((pkg, core))
        if cores:
            return len(cores)
    except OSError:
        pass
    return os.cpu_count() or 1


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def timed(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> list[float]:
    """Wall times of `repeats` calls of fn after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def child_main(run: Callable[[dict[str, Any]], dict[str, Any]]) -> bool:
    """If argv is `--child JSON`, run one configuration, print its result as the last line, return True."""
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        params = json.loads(sys.argv[2])
        setup_child(int(params.get("threads", 0)))
        result = run(params)
        result["peak_rss_mb"] = round(peak_rss_mb(), 1)
        print(json.dumps(result))
        return True
    return False


def configs(quick: bool) -> list[tuple[str, int, int]]:
    """(preset, resolution, channels) to measure: all, or with --quick `paper` at 32x32 only."""
    return [(p, r, c) for p in PRESETS for r, c in SIZES if not (quick and p != "default" and r > 32)]


def run_child(script: str, params: dict[str, Any], timeout: float = 900) -> dict[str, Any]:
    """Run `script --child params` in a fresh process and return its JSON (an 'error' key on failure)."""
    if os.environ.get("VAEMSGAN_BENCH_THREADS") and "threads" not in params:
        params = {**params, "threads": int(os.environ["VAEMSGAN_BENCH_THREADS"])}
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(params.get("threads") or physical_cores()))
    cmd = [sys.executable, str(ROOT / "benchmarks" / script), "--child", json.dumps(params)]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {**params, "error": f"timeout after {timeout:.0f} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return {**params, "error": " | ".join(tail)}
    return json.loads(lines[-1])


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "physical_cores": physical_cores(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "src": src_path(),
        "load_avg_1m_start": round(os.getloadavg()[0], 2),
    }


def table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    """A plain aligned text table (markdown-compatible) of the given columns."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    line = lambda vals: "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths)) + " |"  # noqa: E731
    out = [line(cols), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def write_result(name: str, payload: dict[str, Any], out_dir: Path | None = None) -> Path:
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {**payload, "load_avg_1m_end": round(os.getloadavg()[0], 2)}
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
