"""Several runs' training monitors on one picture (issue 25's 10% study, session 21): the monitor's KID and
coverage against the step, and, for runs with ADA, its augmentation probability. Each run's own RUN/monitor.png
shows one run; this puts runs side by side. Usage:
    python scripts/compare_monitors.py RUN_DIR [RUN_DIR ...] --out FILE.png
where RUN_DIR is a training run folder (the one holding metrics.jsonl).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vaemsgan.training.steplog import monitor_records


def ada_probabilities(log: Path) -> list[tuple[int, float]]:
    """(step, ADA probability) of every logged step record that has one."""
    out = []
    with open(log) as f:
        for line in f:
            rec = json.loads(line)
            if "ada_p" in rec:
                out.append((int(rec["step"]), float(rec["ada_p"])))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    logs = [run / "metrics.jsonl" for run in args.runs]
    for log in logs:
        if not log.is_file():
            print(f"error: {log}: no such file (give training run folders)", file=sys.stderr)
            return 2
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vaemsgan.utils.io import atomic_write

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.2), constrained_layout=True)
    for i, (run, log) in enumerate(zip(args.runs, logs)):
        name = run.parent.name if run.name == "train" else run.name
        style = {"label": name, "color": f"C{i}"}  # one colour per run in every panel
        recs = monitor_records(log)
        steps = [r.step for r in recs]
        axes[0].plot(steps, [r.values.get("kid") for r in recs], **style)
        axes[1].plot(steps, [r.values.get("coverage") for r in recs], **style)
        ada = ada_probabilities(log)
        if ada:
            axes[2].plot([s for s, _ in ada], [p for _, p in ada], **style)
    axes[0].set_yscale("log")
    titles = ("monitor KID (lower is better)", "monitor coverage", "ADA augmentation probability")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if not axes[2].lines:
        axes[2].set_title("ADA augmentation probability (no run has ADA)", fontsize=9)
    atomic_write(args.out, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
