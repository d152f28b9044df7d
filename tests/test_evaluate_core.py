"""One evaluation core (issue 13): `vaemsgan evaluate` and `vaemsgan reproduce` compute their parts with
the same functions (evaluation/core.py), so the same images give the same numbers through both; values
cached from the real data alone give the numbers computing them gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from vaemsgan.data import ImageSet
from vaemsgan.evaluation.classifier import ClassifierConfig
from vaemsgan.evaluation.evaluate import EvalOptions, evaluate_sets
from vaemsgan.experiments.context import Context, ReproduceOptions
from vaemsgan.experiments.runner import evaluate_part
from vaemsgan.utils.io import json_safe


def _without(d: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in keys}


def _generated(real: ImageSet, per_class: int) -> ImageSet:
    """Stand-in generated images: real training images, mirrored and noisy, `per_class` of each class
    in class order (as sampling from a checkpoint gives them)."""
    g = torch.Generator().manual_seed(5)
    idx = torch.cat(
        [(real.labels == c).nonzero().flatten()[:per_class] for c in range(len(real.class_names))]
    )
    noise = torch.randint(-30, 31, real.images[idx].shape, generator=g)
    imgs = (real.images[idx].flip(3).int() + noise).clamp(0, 255).to(torch.uint8)
    return ImageSet(imgs, real.labels[idx].clone(), list(real.class_names), "generated")


def test_evaluate_and_reproduce_give_the_same_numbers(tmp_path: Path) -> None:
    ropts = ReproduceOptions(
        data="fashion-mnist-mini",
        resolution=16,
        per_class=12,
        eval_seeds=1,
        per_class_generated=10,
        classifier_steps=4,
        domain_steps=4,
        n_boot=3,
        cache_dir=str(tmp_path / "cache"),
        progress=False,
    )
    ctx = Context(ropts, lambda msg: None)
    real = ctx.real(["trouser", "bag"])
    gen = _generated(real.train, 10)
    eopts = EvalOptions(
        parts=("stats", "features", "classifier", "memorisation"),
        seeds=1,
        classifier=ClassifierConfig(steps=4),
        domain_steps=4,
        n_boot=3,
        kid_subsets=50,
        ratios=(100.0,),  # more generated images than the pool holds: the sweep is skipped
        mixed_class="bag",
        cache_dir=str(tmp_path / "cache"),
        progress=False,
    )
    ev, _, _ = evaluate_sets(real.train, real.test, gen, eopts)
    ev = json_safe(ev)
    rp = {
        part: json_safe(evaluate_part(part, ctx, real, gen, ropts)) for part in ("stats", "fid", "crossval")
    }

    assert ev["stats"] == rp["stats"]
    info = "extractor_info"
    assert _without(ev["features"], info) == _without(rp["fid"], info)
    assert _without(ev["features"][info], "cache_hit") == _without(rp["fid"][info], "cache_hit")
    assert ev["features"]["overall"]["n_gen"] == 20 and ev["features"]["overall"]["fid"] > 0
    for key in ("table", "per_class", "mixed", "train_per_class"):
        assert ev["classifier"][key] == rp["crossval"][key], key

    # Second evaluation: the real-data side (features, reference metrics, nearest-neighbour reference,
    # statistics, real-data classifiers and their predictions) comes from the cache, with equal numbers.
    again, _, _ = evaluate_sets(real.train, real.test, gen, eopts)
    again = json_safe(again)
    assert sorted(again["classifier"]["real_classifiers_from_cache"]) == ["real", "real_all"]
    for part in ("stats", "memorisation"):
        assert again[part] == ev[part], part
    assert _without(again["features"], info) == _without(ev["features"], info)
    for key in ("table", "per_class", "mixed"):
        assert again["classifier"][key] == ev["classifier"][key], key
    cached = {p.name.split("-")[0] for p in (tmp_path / "cache").iterdir()}
    assert {"features", "nn", "ref", "stats", "pred"} <= cached
