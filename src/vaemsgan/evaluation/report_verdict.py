"""The report's verdict: the numbers of an evaluation turned into short sentences, overall and per class."""

from __future__ import annotations

import math
from typing import Any

from vaemsgan.evaluation.memorisation import TWIN_WARN_SHARE


def _share(v: float | None) -> str:
    return "–" if v is None or math.isnan(v) else f"{v:.0%}"


def dig(d: Any, *keys: str) -> Any:
    """d[k0][k1]... or None where a key is missing or a level is not a dict."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return not (a["low"] > b["high"] or b["low"] > a["high"])


def judge_failed(trtr: float, n_classes: int) -> bool:
    """Is a real-trained classifier's accuracy `trtr` near chance: within a tenth of the way from chance
    (1 / n_classes) to perfect?"""
    if n_classes < 2:
        return False
    chance = 1.0 / n_classes
    return trtr <= chance + 0.1 * (1.0 - chance)


def verdict(result: dict[str, Any]) -> dict[str, Any]:
    """Plain-language conclusions computed from the numbers: {'overall': [...], 'per_class': {name: text}}."""
    lines: list[str] = []
    cv = result.get("classifier") or {}
    table = cv.get("table") or {}
    trtr, tstr, trts = (dig(table, k, "mean") for k in ("TRTR", "TSTR", "TRTS"))
    n_classes = len(result.get("classes") or [])
    if trtr is not None and judge_failed(trtr, n_classes):
        # A judge at chance tells nothing about the generated images: say so, praise nothing.
        lines.append(
            f"The judge itself failed: a classifier trained on real images reaches only {trtr:.2f} on real test "
            f"images, near chance (1/{n_classes} = {1 / n_classes:.2f}), so TSTR and TRTS say nothing about the "
            "generated images. Check the real data (enough images per class? the right test split?) and the "
            "classifier budget (--classifier-steps)."
        )
        trtr = tstr = trts = None
    if trtr and tstr is not None:
        r = tstr / trtr
        qual = (
            "classify almost like real ones"
            if r >= 0.9
            else "carry much of the class information but do not replace real images"
            if r >= 0.7
            else "are a poor substitute for real training images"
        )
        lines.append(
            f"A classifier trained only on generated images reaches {tstr:.2f} accuracy on real test images, "
            f"{r:.2f} of the {trtr:.2f} reached with as many real images (TSTR / TRTR): generated images {qual}."
        )
    if trtr and trts is not None:
        looks = (
            "they look like their class to it"
            if trts >= 0.9 * trtr
            else "many do not look like their class to it"
        )
        lines.append(
            f"A classifier trained on real images labels the generated images correctly {trts:.0%} of the time "
            f"(TRTS; {trtr:.0%} on real test images): {looks}."
        )
    sweep = [s for s in cv.get("sweep", []) if "accuracy" in s]
    base = next((s for s in sweep if s["ratio"] == 0.0), None)
    extra = [s for s in sweep if s["ratio"] > 0]
    if base and extra:
        best = max(extra, key=lambda s: s["accuracy"]["mean"])
        diff = (best["accuracy"]["mean"] - base["accuracy"]["mean"]) * 100
        sig = (
            "the 95% intervals overlap, so this is within seed noise"
            if _overlap(best["accuracy"], base["accuracy"])
            else "the 95% intervals do not overlap"
        )
        lead = "Adding generated images to all real training images" + ("" if diff > 0 else " does not help")
        lines.append(
            f"{lead}: best at {best['ratio']:g}x the real count, "
            f"{best['accuracy']['mean']:.3f} vs {base['accuracy']['mean']:.3f} with real images only "
            f"({diff:+.1f} points; {sig})."
        )
    lines.extend((result.get("augmentation_gain") or {}).get("verdict_lines", []))
    mixed = cv.get("mixed")
    if mixed and dig(mixed, "mixed/real_test_class", "mean") is not None:
        lines.append(
            f"Replacing {mixed['replaced']} of the {mixed['of']} real training images of '{mixed['class']}' by "
            f"generated ones: accuracy on its real test images {mixed['mixed/real_test_class']['mean']:.2f} "
            f"(real only: {mixed['baseline/real_test_class']['mean']:.2f}), on its generated test images "
            f"{mixed['mixed/gen_test_class']['mean']:.2f} ({mixed['baseline/gen_test_class']['mean']:.2f}), on the "
            f"other classes {mixed['mixed/real_test_others']['mean']:.2f} ({mixed['baseline/real_test_others']['mean']:.2f})."
        )
    feats = result.get("features") or {}
    ov = feats.get("overall") or {}
    if ov.get("fid") is not None:
        ref = dig(feats, "reference_real_vs_real", "fid")
        ci = ov.get("fid_ci")
        ci_s = f" (95% bootstrap interval {ci[0]:.1f} to {ci[1]:.1f})" if ci and None not in ci else ""
        ref_s = (
            f"; real training vs real test images at the same size give {ref:.1f}, the floor"
            if ref is not None
            else ""
        )
        lines.append(f"FID in {feats.get('extractor')} features: {ov['fid']:.1f}{ci_s}{ref_s}.")
        if ov.get("precision") is not None and ov.get("recall") is not None:
            lines.append(
                f"Precision {ov['precision']:.2f} (share of generated images that fall among real ones) and "
                f"recall {ov['recall']:.2f} (share of real images the generated ones cover)."
            )
        if ov.get("warning"):
            lines.append(ov["warning"])
    mem = result.get("memorisation") or {}
    if mem.get("pixels"):
        p = mem["pixels"]
        lines.append(
            f"{p['near_copy_share']:.1%} of the generated images are near-copies of a training image (closer in "
            f"contrast-normalised pixels than the closest 1% of unseen real images are; {p['exact_copies']} exact "
            f"copies). Median nearest-training-image distance: {p['gen_nn_median']:.2f} for generated, "
            f"{p['real_nn_median']:.2f} for real test images (0: the same picture; about 1.4: unrelated)."
        )
    rp = mem.get("repeats") or {}
    if rp.get("share") is not None and not math.isnan(rp["share"]):
        worst = max(
            ((n, v) for n, v in rp["per_class"].items() if not math.isnan(v)),
            key=lambda t: t[1],
            default=None,
        )
        lines.append(
            f"{rp['share']:.0%} of the generated images have a near-twin in their class (another generated image "
            f"closer than {rp['fraction']:g} of the real images' typical nearest-other distance; real training "
            f"images: {_share(rp['real_training_share'])})"
            + (
                f": the generator repeats itself within classes (worst: {worst[0]}, {worst[1]:.0%})."
                if rp["share"] > TWIN_WARN_SHARE and worst is not None
                else "."
            )
        )
    per_class: dict[str, str] = {}
    for name in result.get("classes", []):
        bits = []
        pc = dig(cv, "per_class", name) or {}
        if pc.get("TRTR") and pc.get("TSTR") is not None:
            r = pc["TSTR"] / pc["TRTR"]
            how = (
                "classify like real ones"
                if r >= 0.9
                else "classify somewhat worse than real ones"
                if r >= 0.7
                else "classify much worse than real ones"
            )
            bits.append(f"generated images {how} (TSTR {r:.2f} of TRTR)")
        rows = {r["statistic"]: r for r in dig(result, "stats", "per_class") or [] if r["class"] == name}
        lap = rows.get("laplacian_var")
        if lap and lap.get("gap_pct") is not None:
            g = lap["gap_pct"]
            bits.append(f"sharpness {abs(g):.0f}% {'below' if g < 0 else 'above'} real")
        sd = rows.get("std")
        if sd and sd.get("gap_pct") is not None and abs(sd["gap_pct"]) >= 10:
            bits.append(
                f"contrast {abs(sd['gap_pct']):.0f}% {'below' if sd['gap_pct'] < 0 else 'above'} real"
            )
        div = dig(mem, "diversity", name)
        if div and div.get("ratio") is not None:
            ratio = div["ratio"]
            if ratio < 0.8:
                bits.append(f"less varied than real images (diversity {ratio:.2f} of real)")
            elif ratio > 1.25:
                bits.append(
                    f"more varied than real images (diversity {ratio:.2f} of real, often a sign of noise)"
                )
            else:
                bits.append(f"about as varied as real images (diversity {ratio:.2f} of real)")
        if bits:
            per_class[name] = f"class '{name}': " + "; ".join(bits) + "."
    for part, why in (result.get("skipped_parts") or {}).items():
        lines.append(f"Not measured: the {part} part was skipped, {why}.")
    if result.get("classes_only_real"):
        lines.append(
            f"No generated images for: {', '.join(result['classes_only_real'])} (left out of every number)."
        )
    if result.get("classes_only_generated"):
        lines.append(
            f"Generated classes with no real counterpart: {', '.join(result['classes_only_generated'])} (left out)."
        )
    return {"overall": lines, "per_class": per_class}
