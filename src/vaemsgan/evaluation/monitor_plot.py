"""RUN/monitor.png: the training monitor's values against the step, with each stretch a collapse rollback
abandoned drawn apart (grey)."""

from __future__ import annotations

import math
from pathlib import Path


def plot_monitor(history: list[dict[str, float]], path: Path) -> None:
    """The KID, coverage, diversity and near-copy share (the twin share beside it) of `history` against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vaemsgan.utils.io import atomic_write

    kept, abandoned = split_rolled_back(history)
    fig, axes = plt.subplots(1, 4, figsize=(14, 3), constrained_layout=True)
    for ax, key, title in zip(
        axes,
        ("kid", "coverage", "diversity", "near_copy"),
        ("KID (domain features) - lower is better", "coverage", "diversity / data's", "near-copy share"),
    ):
        if key == "near_copy" and any(not math.isnan(r.get("repeats", math.nan)) for r in kept):
            steps = [r["step"] for r in kept]
            ax.plot(steps, [r.get("repeats", math.nan) for r in kept], marker="s", ms=3, color="C3")
            title = "near-copy (blue) and twin (red) share"
        for i, part in enumerate(abandoned):
            label = "rolled back (abandoned)" if i == 0 and key == "kid" else None
            ax.plot([r["step"] for r in part], [r[key] for r in part], "x--", color="0.6", ms=3, label=label)
        ax.plot([r["step"] for r in kept], [r[key] for r in kept], marker="o", ms=3, color="C0")
        if abandoned and key == "kid":
            ax.legend(fontsize=7)
        if key == "kid":  # from hundreds at the start to ~0 (and noise below it) later: both readable
            ax.set_yscale("symlog", linthresh=1.0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=80))
    plt.close(fig)


def split_rolled_back(
    history: list[dict[str, float]],
) -> tuple[list[dict[str, float]], list[list[dict[str, float]]]]:
    """The checks of the trajectory the run kept, and each stretch a collapse rollback abandoned. A rollback
    shows in the history as a step at or below an earlier one: the checks from there on replace the earlier
    ones at the same or later steps."""
    kept: list[dict[str, float]] = []
    abandoned: list[list[dict[str, float]]] = []
    for rec in history:
        if kept and rec["step"] <= kept[-1]["step"]:
            cut = next(i for i, r in enumerate(kept) if r["step"] >= rec["step"])
            abandoned.append(kept[cut:])
            kept = kept[:cut]
        kept.append(rec)
    return kept, abandoned
