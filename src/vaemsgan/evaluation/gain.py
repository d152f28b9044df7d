"""Augmentation gain: does adding generated images to the real ones help a classifier on real test images?

Built on the cross-validation sweep (crossval.py): per seed, a classifier trained on the real training
images only (with the standard crops/flips) and one trained on real + r x generated images, the same seed,
budget and test set. The gain is the per-seed *paired* difference in accuracy (points), reported as mean and
95% Student-t interval over the seeds, overall and per class, with a verdict in plain words.
"""

from __future__ import annotations

import math
from typing import Any

from vaemsgan.metrics.distances import mean_ci


def _interval(diffs: list[float]) -> dict[str, Any]:
    vals = [d for d in diffs if not math.isnan(d)]
    if not vals:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan"), "n": 0, "values": diffs}
    m, lo, hi = mean_ci(vals)
    return {"mean": m, "low": lo, "high": hi, "n": len(vals), "values": diffs}


def gain_verdict(ratio: float, gain: dict[str, Any]) -> str:
    """One sentence from a gain interval in points, e.g. 'adding 1x synthetic images raised accuracy by 2.4
    points (95% CI 1.1 to 3.7)'."""
    m, lo, hi, n = gain["mean"], gain["low"], gain["high"], gain.get("n", 0)
    what = f"adding {ratio:g}x synthetic images"
    if n == 0 or math.isnan(m):
        return f"{what}: no measurement"
    ci = f"95% CI {lo:.1f} to {hi:.1f}" if n > 1 else "one seed, no interval"
    if n > 1 and lo > 0:
        return f"{what} raised accuracy by {m:.1f} points ({ci})"
    if n > 1 and hi < 0:
        return f"{what} lowered accuracy by {-m:.1f} points ({ci}): it hurt"
    return f"{what} did not help measurably: {m:+.1f} points ({ci}{', includes zero' if n > 1 else ''})"


def augmentation_gain(sweep: list[dict[str, Any]], class_names: list[str]) -> dict[str, Any]:
    """Gains of every measured sweep ratio over ratio 0, from the sweep's per-seed accuracies."""
    base = next((s for s in sweep if s["ratio"] == 0.0 and "accuracy" in s), None)
    out: dict[str, Any] = {"baseline": None, "ratios": [], "verdict_lines": []}
    if base is None:
        return out
    out["baseline"] = {"accuracy": base["accuracy"], "per_class": base.get("per_class")}
    for item in sweep:
        if item["ratio"] == 0.0:
            continue
        if "accuracy" not in item:
            out["ratios"].append({"ratio": item["ratio"], "skipped": item.get("skipped", "not measured")})
            out["verdict_lines"].append(f"adding {item['ratio']:g}x: skipped ({item.get('skipped', '')})")
            continue
        diffs = [100 * (a - b) for a, b in zip(item["accuracy"]["values"], base["accuracy"]["values"])]
        entry: dict[str, Any] = {
            "ratio": item["ratio"],
            "accuracy": item["accuracy"],
            "gain_points": _interval(diffs),
        }
        pcs, pcb = item.get("per_class_values"), base.get("per_class_values")
        if pcs and pcb:
            entry["per_class_gain_points"] = {
                name: _interval([100 * (s[c] - b[c]) for s, b in zip(pcs, pcb)])
                for c, name in enumerate(class_names)
            }
        entry["verdict"] = gain_verdict(item["ratio"], entry["gain_points"])
        out["ratios"].append(entry)
        out["verdict_lines"].append(
            entry["verdict"][0].upper()
            + entry["verdict"][1:]
            + f" on the real test set (real only: {100 * base['accuracy']['mean']:.1f}%, "
            f"{base['accuracy']['n']} seeds)."
        )
    return out
