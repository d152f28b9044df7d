"""The HTML report: one self-contained file (plain HTML + CSS, images embedded as base64 PNG).

`make_figures(result, assets)` draws every picture (report_figures.py) as a data URI;
`render_html(result, figures)` lays out the numbers and pictures; `verdict(result)` (report_verdict.py) turns
the numbers into short sentences. A small script in the page writes `images-ok N/N` into #render-check once every <img> has
decoded (naturalWidth > 0), and `js-error` if a script error occurs, so a headless browser can check it.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaemsgan.evaluation.report_figures import (
    STAT_LABELS,
    class_grids,
    classifier_figures,
    features_figures,
    gain_figures,
    memorisation_figures,
    stats_figures,
)
from vaemsgan.evaluation.report_verdict import dig
from vaemsgan.utils.io import atomic_write_text

# ------------------------------------------------------------------------------------------ helpers


def _num(v: Any, fmt: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return format(v, fmt)


def _ci_text(d: dict[str, Any] | None, fmt: str = ".3f") -> str:
    """'0.845 [0.832, 0.858]' (or 'n = 1' when there is no interval)."""
    if not d or d.get("mean") is None:
        return "–"
    if d.get("n", 0) <= 1:
        return f"{_num(d['mean'], fmt)} (n = 1)"
    return f"{_num(d['mean'], fmt)} [{_num(d['low'], fmt)}, {_num(d['high'], fmt)}]"


def _e(s: Any) -> str:
    return html.escape(str(s))


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    h = "".join(f"<th>{_e(x)}</th>" for x in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(x)}</td>" for x in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def make_figures(result: dict[str, Any], assets: dict[str, Any]) -> dict[str, Any]:
    """Every picture of the report, as data URIs: the class grids, then each part's (SECTIONS)."""
    figs: dict[str, Any] = {"grids": class_grids(assets["real"], assets["gen"], result["classes"])}
    for section in SECTIONS:
        if result.get(section.part):
            figs.update(section.figures(result, assets))
    return figs


# ------------------------------------------------------------------------------------------ HTML

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em} th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2} td:first-child,th:first-child{text-align:left}
.stats td:nth-child(2){text-align:left}
.verdict{background:#f6f9fc;border-left:4px solid #3b6ea5;padding:.6em 1.2em}
.note{color:#555;font-size:.9em} .warn{background:#fff6e5;border-left:4px solid #d9822b;padding:.4em 1em}
.grid td{vertical-align:middle;text-align:left} img{image-rendering:pixelated;max-width:100%}
.small{font-size:.8em;color:#666}
"""

SCRIPT = """
<script>
(function(){
  var errors = 0;
  window.addEventListener('error', function(){ errors += 1; });
  function check(){
    var imgs = document.images, ok = 0;
    for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) ok += 1; }
    var el = document.getElementById('render-check');
    el.textContent = (errors ? 'js-error ' : '') + 'images-ok ' + ok + '/' + imgs.length;
    el.setAttribute('data-ok', (!errors && ok === imgs.length) ? 'yes' : 'no');
  }
  window.addEventListener('load', check);
})();
</script>
"""


def _img(uri: str, alt: str) -> str:
    return f'<img src="{uri}" alt="{_e(alt)}">' if uri else ""


def _stats_section(result: dict[str, Any], figs: dict[str, Any]) -> str:
    st = result["stats"]
    head = ["class", "statistic", "real mean", "generated mean", "gap %", "W1", "KS"]
    rows = [
        [
            r["class"],
            STAT_LABELS[r["statistic"]],
            _num(r["real_mean"], ".2f"),
            _num(r["gen_mean"], ".2f"),
            _num(r["gap_pct"], "+.1f"),
            _num(r["w1"], ".3g"),
            _num(r["ks"], ".3f"),
        ]
        for r in st["overall"] + st["per_class"]
    ]
    return (
        "<h2>3. Image statistics (the paper's Table 2)</h2>"
        f"<p>Per image on 0-255 values, then averaged per class: {len(result['classes'])} classes, "
        f"{st['n_real']} real training images, {st['n_gen']} generated images. gap % = (generated - real) / real. "
        "W1 (Wasserstein-1, in the statistic's units) and KS (Kolmogorov-Smirnov, 0 = same distribution, 1 = no "
        "overlap) compare the whole per-image distributions, not only the means. Entropy is per channel (at most 8 "
        "bits), so it is not comparable digit for digit with the paper's values above 8.</p>"
        + _img(figs.get("hist", ""), "histograms of the statistics")
        + _table(head, rows, cls="stats")
    )


def _features_section(result: dict[str, Any], figs: dict[str, Any]) -> str:
    f = result["features"]
    ov, ref = f["overall"], f["reference_real_vs_real"]

    def row(name: str, d: dict[str, Any]) -> list[str]:
        ci = d.get("fid_ci")
        return [
            name,
            f"{d.get('n_real', 0)} / {d.get('n_gen', 0)}",
            _num(d.get("fid"), ".2f") + (f" [{_num(ci[0], '.2f')}, {_num(ci[1], '.2f')}]" if ci else ""),
            _num(d.get("reference_fid"), ".2f"),
            f"{_num(d.get('kid_mean'), '.4f')} ± {_num(d.get('kid_std'), '.4f')}",
            _num(d.get("precision"), ".2f"),
            _num(d.get("recall"), ".2f"),
            _num(d.get("density"), ".2f"),
            _num(d.get("coverage"), ".2f"),
        ]

    ov_row = row("all classes", ov)
    ov_row[3] = _num(ref.get("fid"), ".2f")
    rows = [ov_row] + [row(n, f["per_class"][n]) for n in result["classes"]]
    head = [
        "set",
        "n real / gen",
        "FID [95% bootstrap]",
        "floor FID",
        "KID ± std",
        "precision",
        "recall",
        "density",
        "coverage",
    ]
    info = f.get("extractor_info", {})
    ext = (
        f"a classifier trained on the real training images ({_num(f.get('extractor_real_test_accuracy'), '.1%')} "
        f"accuracy on real test images), features from its penultimate layer ({info.get('classifier', {}).get('feature_dim')}-d); "
        f"{'loaded from the cache' if info.get('cache_hit') else 'trained now and cached'}"
        if f["extractor"] == "domain"
        else "the standard FID Inception-v3 (2048-d pool features)"
    )
    warns = {d.get("warning") for d in [ov, *f["per_class"].values()] if d.get("warning")}
    warn = (
        '<p class="warn">'
        + _e(ov.get("warning") or next(iter(warns)))
        + " Per-class sets are smaller still: read per-class FIDs only against their floor.</p>"
        if warns
        else ""
    )
    return (
        "<h2>4. Feature-space metrics</h2>"
        f"<p>Features: {_e(ext)}. Real test images (never seen by the extractor) against generated images, "
        "matched to the same number per class. <b>floor FID</b>: real training vs real test images at the same sizes, "
        "what a perfect generator would get. FID and KID: lower is better. Precision: share of generated images "
        "inside the real images' k-NN manifold (fidelity); recall: share of real images inside the generated "
        "manifold (diversity); density (can exceed 1) and coverage: the same ideas, robust to outliers.</p>"
        + warn
        + _table(head, rows)
        + _img(figs.get("fid", ""), "per-class FID")
    )


def _classifier_section(result: dict[str, Any], figs: dict[str, Any]) -> str:
    cv = result["classifier"]
    c = cv["classifier"]
    parts = [
        "<h2>5. Classifier cross-validation</h2>",
        f"<p>A VGG-style classifier ({c['depth']} blocks of {c['convs_per_block']} conv3x3-BN-ReLU + max pool, width "
        f"{c['width']} doubling to {c['max_width']}, {c['feature_dim']}-d penultimate layer), trained for a fixed "
        f"{c['steps']} steps of batch {c['batch_size']} with random crops"
        f"{' and horizontal flips' if c['flip'] else ''}, {cv['seeds']} seeds; numbers are mean [95% interval "
        "over seeds]. TRTR: trained on real, tested on real; TRTS: trained on real, tested on generated; TSTR "
        "(Classification Accuracy Score): trained on generated, tested on real; TSTS: trained and tested on "
        f"generated. Real- and generated-trained classifiers see the same number of images per class "
        f"({', '.join(f'{k}: {v}' for k, v in list(cv['train_per_class'].items())[:4])}{', ...' if len(cv['train_per_class']) > 4 else ''}); "
        f"test sets: {cv['n_real_test']} real, {cv['n_gen_test']} held-out generated images.</p>",
    ]
    if "table" in cv:
        parts.append(_table(["experiment", "accuracy"], [[k, _ci_text(v)] for k, v in cv["table"].items()]))
        parts.append(_img(figs.get("crossval", ""), "cross-validation accuracies"))
    mixed = cv.get("mixed")
    if mixed and "mixed/real_test_class" in mixed:
        parts.append(
            f"<h3>Mixed training set (the paper's 500 + 500 experiment)</h3><p>{mixed['replaced']} of the "
            f"{mixed['of']} real training images of class '{_e(mixed['class'])}' replaced by generated ones; every "
            "other class unchanged. Compared with the classifier trained on all real images.</p>"
        )
        rows = [
            [lab, _ci_text(mixed[f"baseline/{k}"]), _ci_text(mixed[f"mixed/{k}"])]
            for k, lab in (
                ("real_test_class", "real test images of this class"),
                ("gen_test_class", "generated test images of this class"),
                ("real_test_others", "real test images of the other classes"),
            )
        ]
        parts.append(_table(["accuracy on", "real only", "half replaced"], rows))
        parts.append(_img(figs.get("mixed", ""), "mixed experiment"))
    if cv.get("sweep"):
        parts.append(
            "<h3>Augmentation sweep</h3><p>All real training images plus generated ones (ratio = generated / real "
            "per class), accuracy on real test images.</p>"
        )
        rows = [
            [
                "real only" if s["ratio"] == 0 else f"+{s['ratio']:g}x",
                s["n_generated"],
                _ci_text(s.get("accuracy")) if "accuracy" in s else "skipped: " + s["skipped"],
            ]
            for s in cv["sweep"]
        ]
        parts.append(_table(["training set", "generated images", "accuracy"], rows))
        parts.append(_img(figs.get("sweep", ""), "augmentation sweep"))
    return "".join(parts)


def _diff_text(d: dict[str, Any] | None) -> str:
    """'+2.1 [0.4, 3.8]' points (or 'n = 1')."""
    return _ci_text(d, "+.1f")


def _gain_section(result: dict[str, Any], figs: dict[str, Any]) -> str:
    g = result["augmentation_gain"]
    pol = g["policy"]
    base, ref = g["baseline"], g["reference"]
    policy_text = (
        f"random crops of the image padded by {pol['crop_pad']} px"
        + (", horizontal flips" if pol["flip"] else " (no flips)")
        + (
            f", rotation within ±{pol['rotate_degrees']:g}° and scale {pol['scale'][0]:g}-{pol['scale'][1]:g}"
            if pol["rotate_degrees"] or pol["scale"] != [1.0, 1.0]
            else ""
        )
    )
    parts = [
        "<h2>Augmentation gain</h2>",
        f"<p>Does adding synthetic images help a classifier on the real test images ({g['n_real_test']}) beyond "
        f"the augmentation one would use anyway? Baseline: <b>{_e(base['label'])}</b> ({_e(pol['name'])} policy: "
        f"{_e(policy_text)}). Every synthetic arm adds r synthetic images per real training image of each class "
        f"and is trained with the same policy, the same classifier, steps and seeds ({g['seeds']}), so only the "
        "data differ. Difference = arm minus baseline in accuracy points, paired by classifier seed: mean "
        "[95% interval over seeds]. Definitions: docs/EVALUATION.md.</p>",
        f'<p class="verdict">{_e(g["verdict"])}</p>',
    ]
    rows = [
        [ref["label"], "-", "-", _ci_text(ref["accuracy"]), _diff_text(ref["difference_points"])],
        [base["label"] + " (baseline)", "-", "-", _ci_text(base["accuracy"]), "0"],
    ]
    for a in g["arms"]:
        if "skipped" in a:
            rows.append([a["label"], "-", "-", "skipped: " + a["skipped"], "-"])
            continue
        for r in a["ratios"]:
            if "skipped" in r:
                rows.append(
                    [a["label"], f"{r['ratio']:g}x", r["n_generated"], "skipped: " + r["skipped"], "-"]
                )
            else:
                rows.append(
                    [
                        a["label"],
                        f"{r['ratio']:g}x",
                        r["n_generated"],
                        _ci_text(r["accuracy"]),
                        _diff_text(r["difference_points"]),
                    ]
                )
    parts.append(_table(["arm", "ratio", "synthetic images", "accuracy", "difference (points)"], rows))
    parts.append(_img(figs.get("gain", ""), "accuracy difference to the baseline against the ratio"))
    names = result["classes"]
    pc_rows = [
        [
            "real only, no augmentation",
            "-",
            *[_num(dig(ref, "per_class_difference_points", n, "mean"), "+.1f") for n in names],
        ]
    ]
    for a in g["arms"]:
        for r in a.get("ratios", []):
            if "per_class_difference_points" in r:
                pc_rows.append(
                    [
                        a["label"],
                        f"{r['ratio']:g}x",
                        *[_num(r["per_class_difference_points"][n]["mean"], "+.1f") for n in names],
                    ]
                )
    base_pc = ", ".join(f"{n} {_num(base['per_class'].get(n), '.2f')}" for n in names)
    parts.append(
        "<h3>Per class: accuracy difference to the baseline (points, mean over seeds)</h3>"
        f"<p>Baseline per-class accuracy: {_e(base_pc)}. "
        "Positive: the arm helps that class; negative: it hurts. Intervals per class are in metrics.json.</p>"
    )
    parts.append(_table(["arm", "ratio", *names], pc_rows))
    return "".join(parts)


def _memorisation_section(result: dict[str, Any], figs: dict[str, Any]) -> str:
    m = result["memorisation"]
    rows = [
        [
            space,
            _num(m[k]["threshold"], ".3g"),
            f"{m[k]['near_copy_share']:.2%} ({m[k]['near_copies']})",
            m[k]["exact_copies"],
            _num(m[k]["gen_nn_median"], ".3g"),
            _num(m[k]["real_nn_median"], ".3g"),
        ]
        for k, space in (("pixels", "pixels (contrast-normalised RMS)"), ("features", "domain features"))
    ]
    twins = (m.get("repeats") or {}).get("per_class", {})
    div = [
        [n, _num(d["real"], ".3g"), _num(d["gen"], ".3g"), _num(d["ratio"], ".2f"), _num(twins.get(n), ".0%")]
        for n, d in m["diversity"].items()
    ]
    pairs = ", ".join(f"{p['class']} {p['pixel_distance']:.2f}" for p in m["closest_pairs"])
    return (
        "<h2>6. Memorisation and diversity</h2>"
        f"<p>For each of the {m['n_gen']} generated images, the distance to its nearest image among the "
        f"{m['n_train']} training images; the reference is the same distance for the {m['n_reference']} real test "
        "images (real images that were never trained on). A generated image is a <b>near-copy</b> when it is at "
        "least as close to a training image as the closest 1% of the real test images are (threshold = 1st "
        "percentile of their distances). Pixel distances are contrast-normalised: each image minus its mean, over "
        "its standard deviation, then the RMS difference: 0 for the same picture at any brightness and contrast, "
        "about 1.4 for unrelated pictures (plain grey levels would call bland images close).</p>"
        + _table(
            [
                "space",
                "threshold",
                "near-copies",
                "exact copies",
                "median NN distance, generated",
                "median, real test",
            ],
            rows,
        )
        + _img(figs.get("nn_hist", ""), "nearest-neighbour distances")
        + "<h3>The closest generated images (top row) and their nearest training images (bottom row)</h3>"
        + _img(figs.get("pairs", ""), "closest pairs")
        + f'<p class="small">class and contrast-normalised pixel distance, left to right: {_e(pairs)}</p>'
        + "<h3>Diversity per class</h3><p>Mean Euclidean distance between the domain features of two images of "
        "the class (all pairs, up to 500 images); ratio = generated / real. Much below 1: the generator repeats "
        "itself (mode collapse); well above 1: noisy or off-class images. A mean distance hardly moves when a "
        "part of the samples repeat: the <b>twin share</b> is the share of generated images whose nearest other "
        "generated image of the class is closer than 0.4 of the median such distance among as many real test "
        "images (real images: about 0).</p>"
        + _table(["class", "real", "generated", "ratio", "twin share"], div)
    )


def render_html(result: dict[str, Any], figs: dict[str, Any]) -> str:
    """The whole page as one string."""
    names = result["classes"]
    v = result.get("verdict", {"overall": [], "per_class": {}})
    tm = result.get("timings_s", {})
    headline = []
    t = dig(result, "classifier", "table") or {}
    for k in ("TRTR", "TRTS", "TSTR", "TSTS"):
        if k in t:
            headline.append([k, _ci_text(t[k])])
    fo = dig(result, "features", "overall") or {}
    if fo.get("fid") is not None:
        ci = fo.get("fid_ci")
        headline.append(
            ["FID", _num(fo["fid"], ".2f") + (f" [{_num(ci[0], '.2f')}, {_num(ci[1], '.2f')}]" if ci else "")]
        )
        headline.append(
            [
                "FID floor (real vs real)",
                _num(dig(result, "features", "reference_real_vs_real", "fid"), ".2f"),
            ]
        )
    mem = dig(result, "memorisation", "pixels")
    if mem:
        headline.append(["near-copies (pixels)", f"{mem['near_copy_share']:.2%}"])
    counts = result["counts"]
    count_rows = [[n, counts[n]["real_train"], counts[n]["real_test"], counts[n]["generated"]] for n in names]
    grid_rows = "".join(
        f"<tr><td>{_e(n)}</td><td>{_img(figs['grids'][n]['real'], 'real ' + n)}</td>"
        f"<td>{_img(figs['grids'][n]['gen'], 'generated ' + n)}</td></tr>"
        for n in names
    )
    one_sided = ""
    if result.get("classes_only_real") or result.get("classes_only_generated"):
        one_sided = (
            '<p class="warn">Classes on one side only (left out of every number): real only: '
            f"{_e(', '.join(result['classes_only_real']) or '-')}; generated only: "
            f"{_e(', '.join(result['classes_only_generated']) or '-')}.</p>"
        )
    body = [
        "<h1>vaemsgan evaluation report</h1>",
        f'<p class="note">Real: {_e(result["real_source"])} (test images: {_e(result["test_images"])}). '
        f"Generated: {_e(result['generated_source'])}. {result['resolution']} px, {result['channels']} channel(s), "
        f"{len(names)} classes. Metric definitions: docs/EVALUATION.md.</p>",
        '<p class="small" id="render-check" data-ok="pending">images not checked yet</p>',
        one_sided,
        '<h2>1. Verdict</h2><div class="verdict"><ul>'
        + "".join(f"<li>{_e(x)}</li>" for x in v["overall"])
        + "</ul><ul>"
        + "".join(f"<li>{_e(x)}</li>" for x in v["per_class"].values())
        + "</ul></div>",
        _table(["headline", "value"], headline) if headline else "",
        "<h2>2. Images: real (left) and generated (right), 8 random images per class</h2>",
        f'<table class="grid"><thead><tr><th>class</th><th>real</th><th>generated</th></tr></thead><tbody>{grid_rows}</tbody></table>',
        _table(["class", "real training", "real test", "generated"], count_rows),
    ]
    body += [section.html(result, figs) for section in SECTIONS if result.get(section.part)]
    body.append(
        "<h2>7. Wall time per part</h2>"
        + _table(["part", "seconds"], [[k, _num(s, ".1f")] for k, s in tm.items()])
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>vaemsgan evaluation</title>'
        f"<style>{CSS}</style></head><body>" + "\n".join(body) + SCRIPT + "</body></html>\n"
    )


@dataclass(frozen=True)
class Section:
    """One evaluation part's share of the report, drawn from the part's results (`result[part]`) alone:
    its pictures (from the results and the arrays the part returned) and its HTML. A new part adds one."""

    part: str
    figures: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]  # (result, assets) -> figures
    html: Callable[[dict[str, Any], dict[str, Any]], str]  # (result, figures) -> HTML


# In the order of the page.
SECTIONS = (
    Section("stats", stats_figures, _stats_section),
    Section("features", features_figures, _features_section),
    Section("classifier", classifier_figures, _classifier_section),
    Section("augmentation_gain", gain_figures, _gain_section),
    Section("memorisation", memorisation_figures, _memorisation_section),
)


def write_report(result: dict[str, Any], assets: dict[str, Any], out: str | Path) -> Path:
    """Draw the figures and write out/report.html atomically."""
    path = Path(out) / "report.html"
    atomic_write_text(path, render_html(result, make_figures(result, assets)))
    return path
