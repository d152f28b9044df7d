"""Evaluation: classifier, cross-validation, memorisation, extractors (cache, Inception loading), report, CLI."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from vaemsgan.errors import ConfigError, OutputExistsError, VaemsganError
from vaemsgan.evaluation import classifier as clf_mod
from vaemsgan.evaluation import extractors as ext_mod
from vaemsgan.evaluation import memorisation as mem_mod
from vaemsgan.evaluation.classifier import (
    ClassifierConfig,
    accuracy,
    features,
    folded_for_inference,
    logits,
    train_classifier,
)
from vaemsgan.evaluation.crossval import CrossvalOptions, LabelledImages, run_crossval
from vaemsgan.evaluation.evaluate import EvalOptions, evaluate, match_classes
from vaemsgan.evaluation.inception import FIDInceptionV3, load_fid_inception
from vaemsgan.evaluation.memorisation import (
    closest_pairs,
    mean_pairwise_distance,
    memorisation_summary,
    nearest_neighbours,
    pixel_nn,
)
from vaemsgan.utils.io import save_png

TINY_CLF = ClassifierConfig(width=8, max_width=16, depth=2, feature_dim=16, steps=6, batch_size=16)


def stripes(n: int, seed: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """An easy 2-class set: horizontal (class 0) vs vertical (class 1) stripes, random phase, noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    phase = torch.randint(0, 4, (n,), generator=g)
    coord = torch.arange(size)
    rows = ((coord[None, :] + phase[:, None]) // 2 % 2).float()  # n x size
    horiz = rows[:, :, None].expand(n, size, size)
    vert = rows[:, None, :].expand(n, size, size)
    x = torch.where(labels[:, None, None] == 0, horiz, vert) * 180 + 40
    x = x + torch.randn(n, size, size, generator=g) * 20
    return x.clamp(0, 255).to(torch.uint8)[:, None], labels


# ------------------------------------------------------------------------------------------ classifier


def test_classifier_learns_easy_two_class_set() -> None:
    x, y = stripes(200, 0)
    xt, yt = stripes(200, 1)
    cfg = ClassifierConfig(
        width=8, max_width=16, depth=2, feature_dim=16, steps=60, batch_size=32, flip=False
    )
    model = train_classifier(x, y, 2, cfg, seed=0)
    assert accuracy(model, xt, yt) > 0.95
    assert features(model, xt[:5]).shape == (5, 16)


def test_classifier_is_seeded_and_leaves_global_rng_alone() -> None:
    x, y = stripes(40, 0)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = train_classifier(x, y, 2, TINY_CLF, seed=3)
    after = torch.rand(1)
    b = train_classifier(x, y, 2, TINY_CLF, seed=3)
    assert torch.equal(before, after)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_classifier_rejects_bad_input() -> None:
    with pytest.raises(ConfigError):
        train_classifier(torch.zeros(4, 1, 16, 16), torch.zeros(4), 2, TINY_CLF)
    with pytest.raises(ConfigError):
        train_classifier(
            torch.zeros(4, 1, 16, 16, dtype=torch.uint8), torch.tensor([0, 1, 2, 0]), 2, TINY_CLF
        )


# ------------------------------------------------------------------------------------------ cross-validation


def test_crossval_structure_and_sane_values() -> None:
    x, y = stripes(60, 0)
    xt, yt = stripes(20, 1)
    xg, yg = stripes(40, 2)
    xgt, ygt = stripes(10, 3)
    opts = CrossvalOptions(seeds=2, classifier=TINY_CLF, ratios=(0.5, 4.0))
    out = run_crossval(
        LabelledImages(x, y),
        LabelledImages(xt, yt),
        LabelledImages(xg, yg),
        LabelledImages(xgt, ygt),
        ["h", "v"],
        opts,
    )
    assert set(out["table"]) == {"TRTR", "TRTS", "TSTR", "TSTS"}
    for v in out["table"].values():
        assert len(v["values"]) == 2 and 0.0 <= v["low"] <= v["mean"] <= v["high"] <= 1.0
    assert out["train_per_class"] == {"h": 20, "v": 20}  # min(real 30, generated 20) per class
    assert set(out["per_class"]) == {"h", "v"}
    assert out["mixed"]["class"] == "h" and out["mixed"]["replaced"] == 15
    for key in ("baseline/real_test_class", "mixed/gen_test_class", "mixed/real_test_others"):
        assert 0.0 <= out["mixed"][key]["mean"] <= 1.0
    sweep = {s["ratio"]: s for s in out["sweep"]}
    assert set(sweep) == {0.0, 0.5, 4.0}
    assert "accuracy" in sweep[0.0] and "accuracy" in sweep[0.5]
    assert "skipped" in sweep[4.0] and "accuracy" not in sweep[4.0]


def test_batchnorm_folded_for_inference_is_the_same_function() -> None:
    """Folding each BatchNorm into its convolution (what logits/features run) gives the eval-mode model's
    logits and features up to float rounding, for non-trivial BatchNorm statistics; the model keeps its
    BatchNorm layers and its training mode."""
    x, y = stripes(40, 0)
    model = train_classifier(x, y, 2, TINY_CLF, seed=0)
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    model.train()
    folded = folded_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) and model.training
    with torch.no_grad():
        xf = x.float().div(127.5).sub(1.0).contiguous(memory_format=torch.channels_last)
        ref_logits, ref_feats = model.eval()(xf), model.features(xf)
    assert torch.allclose(logits(model, x), ref_logits, atol=1e-5, rtol=1e-5)
    assert torch.allclose(features(model, x), ref_feats, atol=1e-5, rtol=1e-5)
    assert (ref_logits.std(0) > 1e-3).all()  # a real function of the input, not a constant


def test_crossval_in_parallel_threads_gives_the_sequential_numbers() -> None:
    """Classifiers trained two at a time (one intra-op thread each) give exactly the numbers of the same
    classifiers trained one after another on one thread, and the thread count is restored."""
    x, y = stripes(60, 0)
    xt, yt = stripes(20, 1)
    xg, yg = stripes(40, 2)
    xgt, ygt = stripes(10, 3)
    sets = (LabelledImages(x, y), LabelledImages(xt, yt), LabelledImages(xg, yg), LabelledImages(xgt, ygt))
    before = torch.get_num_threads()
    out = {}
    for workers in (1, 2):
        torch.set_num_threads(1)
        opts = CrossvalOptions(seeds=2, classifier=TINY_CLF, ratios=(0.5,), workers=workers)
        out[workers] = run_crossval(*sets, ["h", "v"], opts)
    torch.set_num_threads(before)
    for key in ("table", "per_class", "mixed"):
        assert out[1][key] == out[2][key], key
    assert [s.get("accuracy") for s in out[1]["sweep"]] == [s.get("accuracy") for s in out[2]["sweep"]]
    torch.set_num_threads(2)
    run_crossval(*sets, ["h", "v"], CrossvalOptions(seeds=1, classifier=TINY_CLF, ratios=(), workers=2))
    assert torch.get_num_threads() == 2
    torch.set_num_threads(before)


# ------------------------------------------------------------------------------------------ memorisation


def test_copies_are_near_copies_at_distance_zero() -> None:
    train, _ = stripes(30, 0)
    ref, _ = stripes(20, 1)
    gen = train[torch.tensor([3, 7, 7, 12])]
    d, idx = pixel_nn(gen, train)
    assert torch.equal(d, torch.zeros(4, dtype=torch.float64))
    assert torch.equal(train[idx], gen)
    r, _ = pixel_nn(ref, train)
    summary = memorisation_summary(d, r)
    assert summary["near_copy_share"] == 1.0 and summary["exact_copies"] == 4
    assert closest_pairs(d, idx, k=2)[0][2] == 0.0


def _standardised(images: torch.Tensor) -> torch.Tensor:
    x = images.reshape(len(images), -1).double()
    return (x - x.mean(1, keepdim=True)) / x.std(1, unbiased=False, keepdim=True).clamp_min(1.0)


def test_nearest_neighbours_match_brute_force() -> None:
    g = torch.Generator().manual_seed(3)
    ref = torch.randint(0, 256, (300, 1, 8, 8), dtype=torch.uint8, generator=g)
    ref[10] = ref[20]  # a duplicate: the tie goes to the lower index
    query = torch.cat([ref[[20, 5]], torch.randint(0, 256, (50, 1, 8, 8), dtype=torch.uint8, generator=g)])
    d, idx = pixel_nn(query, ref, contrast=False)
    full = torch.cdist(query.reshape(len(query), -1).double(), ref.reshape(len(ref), -1).double()) / 8.0
    assert torch.allclose(d, full.min(1).values, rtol=0, atol=1e-9)
    assert idx[0] == 10 and idx[1] == 5 and d[0] == 0.0 and d[1] == 0.0
    assert torch.equal(idx[2:], full[2:].argmin(1))
    # Contrast-normalised (the default): the same search over each image standardised by its own pixels.
    d, idx = pixel_nn(query, ref)
    full = torch.cdist(_standardised(query), _standardised(ref)) / 8.0
    assert torch.allclose(d, full.min(1).values, rtol=0, atol=1e-6)
    assert idx[0] == 10 and idx[1] == 5 and d[0] == 0.0 and d[1] == 0.0
    assert torch.equal(idx[2:], full[2:].argmin(1))
    f, fr = torch.randn(40, 16, generator=g), torch.randn(500, 16, generator=g)
    d, idx = nearest_neighbours(f, fr)
    assert torch.equal(idx, torch.cdist(f.double(), fr.double()).argmin(1))


def test_pruned_nearest_neighbours_are_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    # The lower-bound search on a small scale: 8 principal directions of 16x16 images, 6 candidates.
    monkeypatch.setattr(mem_mod, "PROJ_DIMS", 8)
    monkeypatch.setattr(mem_mod, "_PROJ_CANDIDATES", 6)
    monkeypatch.setattr(mem_mod, "_PRUNE_MIN_PAIRS", 0)
    ref, _ = stripes(400, 0)
    query = torch.cat([stripes(60, 1)[0], ref[[5, 17]]])
    q, r = query.reshape(len(query), -1).float(), ref.reshape(len(ref), -1).float()
    d2, idx, todo = mem_mod._pruned_search(q, r)
    assert 0 < int(todo.sum()) < len(q)  # most rows settled by the bound, some left to the full search
    d, idx = pixel_nn(query, ref, contrast=False)
    full = torch.cdist(q.double(), r.double()) / 16.0
    assert torch.allclose(d, full.min(1).values, rtol=0, atol=1e-9)
    assert torch.equal(idx, full.argmin(1)) and d[-2:].tolist() == [0.0, 0.0]
    # The reference's index given by the caller (as the evaluation cache does): the same answer, exactly;
    # an index round-tripped through its dict form (the cache file) too; contrast-normalised likewise.
    for contrast in (False, True):
        d, idx = pixel_nn(query, ref, contrast=contrast)
        index = mem_mod.pixel_index(ref, contrast=contrast)
        assert index.proj.shape == (400, 8) and index.basis.shape == (256, 8)
        for given in (index, mem_mod.ProjectionIndex.from_dict(index.as_dict())):
            d_i, idx_i = pixel_nn(query, ref, given, contrast=contrast)
            assert torch.equal(d_i, d) and torch.equal(idx_i, idx)
    full = torch.cdist(_standardised(query), _standardised(ref)) / 16.0
    assert torch.allclose(d, full.min(1).values, rtol=0, atol=1e-6) and d[-2:].tolist() == [0.0, 0.0]


def test_real_side_caches_the_pixel_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The training images' pixel index is computed once, stored with the real-data cache, and read back by
    a later evaluation; it is not computed at all when the search would not use it."""
    from vaemsgan.data import ImageSet
    from vaemsgan.evaluation.core import RealSide

    monkeypatch.setattr(mem_mod, "PROJ_DIMS", 8)
    monkeypatch.setattr(mem_mod, "_PRUNE_MIN_PAIRS", 1000)
    x, y = stripes(400, 0)
    xt, yt = stripes(40, 1)
    train, test = ImageSet(x, y, ["h", "v"], "t"), ImageSet(xt, yt, ["h", "v"], "t")
    first = RealSide(train, test, tmp_path)
    assert (
        first.training_pixel_index(1) is None
    )  # 1 x 400 pairs: below the pruning threshold, nothing computed
    assert not list(tmp_path.glob("pixel-index-*.pt"))
    a = first.training_pixel_index(40)
    assert a is not None and len(list(tmp_path.glob("pixel-index-*.pt"))) == 1
    second = RealSide(train, test, tmp_path)
    b = second.training_pixel_index(40)
    assert b is not None and "pixel-index" in second.hits and "pixel-index" not in first.hits
    assert all(torch.equal(u, v) for u, v in zip(a.as_dict().values(), b.as_dict().values(), strict=True))


def test_pixel_distance_is_rms_grey_levels() -> None:
    a = torch.zeros(1, 1, 4, 4, dtype=torch.uint8)
    b = torch.full((1, 1, 4, 4), 10, dtype=torch.uint8)
    d, _ = pixel_nn(a, b, contrast=False)
    assert d.item() == pytest.approx(10.0)


def test_contrast_normalised_pixel_distance_known_answers() -> None:
    """0 for the same picture at another brightness and contrast, 2 for its negative, sqrt(2) for a picture
    uncorrelated with it; flat images (standard deviation under 1 grey level) are not blown up to noise."""
    a = torch.tensor([0, 100] * 8, dtype=torch.uint8).reshape(1, 1, 4, 4)  # z = -1, +1, ...
    brighter = a * 2 + 20  # 20 / 220: the same picture
    negative = 100 - a
    other = torch.tensor([0, 0, 100, 100] * 4, dtype=torch.uint8).reshape(1, 1, 4, 4)  # correlation 0 with a
    d, _ = pixel_nn(torch.cat([brighter, negative, other]), a)
    assert d.tolist() == pytest.approx([0.0, 2.0, math.sqrt(2.0)], abs=1e-6)
    flat, flat2 = (
        torch.full((1, 1, 4, 4), 50, dtype=torch.uint8),
        torch.full((1, 1, 4, 4), 51, dtype=torch.uint8),
    )
    d, _ = pixel_nn(flat, a)
    assert d.item() == pytest.approx(1.0, abs=1e-6)  # z(flat) = 0, z(a) has RMS 1
    assert pixel_nn(flat2, flat)[0].item() == 0.0  # two blanks: the same (empty) picture
    # Bland images with different low-contrast patterns are close in grey levels, not normalised.
    bland = torch.stack(
        [
            (torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(s)) * 8 + 100).to(torch.uint8)
            for s in range(2)
        ]
    )
    assert pixel_nn(bland[:1], bland[1:], contrast=False)[0].item() < 5.0
    assert pixel_nn(bland[:1], bland[1:])[0].item() > 1.0


def test_diversity_of_identical_images_is_zero() -> None:
    f = torch.ones(10, 8) * 3.0
    assert mean_pairwise_distance(f) == 0.0
    g = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert mean_pairwise_distance(g) == pytest.approx(5.0)


def _flat(levels: list[int], cls: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat 4x4 grey images at the given levels (RMS distance between two = the levels' difference)."""
    imgs = torch.tensor(levels, dtype=torch.uint8)[:, None, None, None].expand(-1, 1, 4, 4).contiguous()
    return imgs, torch.full((len(levels),), cls)


def _turned(degrees: list[float], cls: int) -> tuple[torch.Tensor, torch.Tensor]:
    """4x4 grey images 128 + 60 (cos(a) s + sin(a) t) for angles a, with s a checkerboard and t stripes two
    pixels wide (orthogonal, zero mean, RMS 1): standardised, an image is cos(a) s + sin(a) t, so the
    contrast-normalised distance of two is 2 sin(|a1 - a2| / 2)."""
    sq = torch.tensor([[1.0, -1.0, 1.0, -1.0], [-1.0, 1.0, -1.0, 1.0]]).repeat(2, 1)
    st = torch.tensor([1.0, 1.0, -1.0, -1.0]).repeat(4, 1)
    a = torch.tensor(degrees, dtype=torch.float64).deg2rad()[:, None, None]
    imgs = (128 + 60 * (a.cos() * sq + a.sin() * st)).round().to(torch.uint8)[:, None]
    return imgs, torch.full((len(degrees),), cls)


def _chord(degrees: float) -> float:
    return 2 * math.sin(math.radians(degrees) / 2)


def test_twins_are_judged_against_the_class_s_real_spread() -> None:
    from vaemsgan.evaluation.memorisation import TWIN_FRACTION, leave_one_out_nn, twin_shares, twin_thresholds

    # Real class 0: 0, 40, 80, 120 degrees (nearest other 40 degrees each: threshold 0.4 * chord(40)); class 1:
    # 0 and 100 degrees (0.4 * chord(100)).
    (r0, l0), (r1, l1) = _turned([0, 40, 80, 120], 0), _turned([0, 100], 1)
    refs = twin_thresholds(torch.cat([r0, r1]), torch.cat([l0, l1]), 2)
    assert refs == [
        (pytest.approx(TWIN_FRACTION * _chord(40), rel=0.02), 4),
        (pytest.approx(TWIN_FRACTION * _chord(100), rel=0.02), 2),
    ]
    assert leave_one_out_nn(r0, contrast=True).tolist() == pytest.approx([_chord(40)] * 4, rel=0.02)
    assert leave_one_out_nn(_flat([0, 40, 80, 120], 0)[0], contrast=False).tolist() == pytest.approx(
        [40.0] * 4
    )  # plain
    # Generated class 0: 0, 10, 100, 200 degrees -> nearest others 10, 10, 90, 100 degrees: two twins of four;
    # class 1 only its first 2 images count (as many as the real side had): 100 and 130, 30 degrees apart,
    # closer than 0.4 * chord(100) = 0.61 (chord(30) = 0.52): both twins.
    (g0, k0), (g1, k1) = _turned([0, 10, 100, 200], 0), _turned([100, 130, 0], 1)
    assert twin_shares(torch.cat([g0, g1]), torch.cat([k0, k1]), refs) == [0.5, 1.0]
    # Too few generated images of a class (fewer than the real side's n): no share rather than a biased one.
    assert math.isnan(twin_shares(g0, k0, [(0.3, 4), (0.6, 2)])[1])
    # Bland is not repeated: unrelated low-contrast patterns are close in plain pixels (RMS ~7 against ~71 for
    # the real ones) but as far apart as the real ones relative to their contrast; copies of one pattern under
    # faint noise are twins.
    g = torch.Generator().manual_seed(0)
    real = (128 + 50 * torch.randn(8, 1, 8, 8, generator=g)).clamp(0, 255).to(torch.uint8)
    bland = (128 + 5 * torch.randn(8, 1, 8, 8, generator=g)).round().to(torch.uint8)
    one = real[:1].double() + 2 * torch.randn(8, 1, 8, 8, generator=g)
    zeros = torch.zeros(8, dtype=torch.long)
    refs = twin_thresholds(real, zeros, 1)
    assert float(leave_one_out_nn(bland, contrast=False).median()) < 0.2 * float(
        leave_one_out_nn(real, contrast=False).median()
    )
    assert float(leave_one_out_nn(bland, contrast=True).median()) > 1.0
    assert twin_shares(bland, zeros, refs) == [0.0]
    assert twin_shares(one.round().clamp(0, 255).to(torch.uint8), zeros, refs) == [1.0]
    # Real images all alike: a threshold of 0 could find no twin, so the class has none.
    same, ls = _flat([7, 7, 7], 0)
    assert math.isnan(twin_thresholds(same, ls, 1)[0][0]) and math.isnan(
        twin_shares(g0, k0, [(math.nan, 4)])[0]
    )


def test_match_classes_reports_one_sided() -> None:
    common, only_real, only_gen = match_classes(["a", "b", "c"], ["c", "a", "z"])
    assert common == ["a", "c"] and only_real == ["b"] and only_gen == ["z"]


# ------------------------------------------------------------------------------------------ extractors


def test_domain_extractor_cache_hit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = stripes(40, 0)
    e1 = ext_mod.domain_extractor(x, y, ["h", "v"], TINY_CLF, cache_dir=tmp_path)
    assert not e1.info["cache_hit"]
    cache_file = Path(e1.info["cache_file"])
    mtime = cache_file.stat().st_mtime_ns

    def no_training(*a: object, **k: object) -> None:
        raise AssertionError("retrained despite a cache file")

    monkeypatch.setattr(clf_mod, "train_classifier", no_training)
    e2 = ext_mod.domain_extractor(x, y, ["h", "v"], TINY_CLF, cache_dir=tmp_path)
    assert e2.info["cache_hit"] and cache_file.stat().st_mtime_ns == mtime
    assert torch.allclose(e1(x[:4]), e2(x[:4]))
    # Other data -> another key -> trains again (which the patch forbids).
    with pytest.raises(AssertionError, match="retrained"):
        ext_mod.domain_extractor(x.flip(0), y.flip(0), ["h", "v"], TINY_CLF, cache_dir=tmp_path)


def test_inception_missing_weights_says_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(VaemsganError, match="--inception-weights"):
        load_fid_inception(tmp_path / "nope.pth")
    with pytest.raises(VaemsganError, match="pt_inception-2015-12-05"):
        ext_mod.build_extractor("inception", weights=None)
    bad = tmp_path / "bad.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    with pytest.raises(ConfigError, match="not the FID Inception"):
        load_fid_inception(bad)


def test_inception_loads_a_compatible_state_dict(tmp_path: Path) -> None:
    net = FIDInceptionV3()
    state = {
        k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")
    }  # as old files
    assert "Mixed_7c.branch3x3dbl_3b.bn.running_var" in state and state["fc.weight"].shape == (1008, 2048)
    path = tmp_path / "pt_inception.pth"
    torch.save(state, path)
    loaded = load_fid_inception(path, resize=False)
    with torch.inference_mode():
        out = loaded(torch.randint(0, 256, (1, 1, 75, 75), dtype=torch.uint8))  # 75 px: the smallest it takes
    assert out.shape == (1, 2048) and torch.isfinite(out).all()


# ------------------------------------------------------------------------------------------ end to end

FAST = {
    "seeds": 2,
    "classifier": ClassifierConfig(width=8, max_width=16, depth=2, feature_dim=16, steps=8, batch_size=16),
    "domain_steps": 8,
    "n_boot": 3,
    "kid_subsets": 3,
    "ratios": (0.5,),
    "progress": False,
}


def _image_folder(root: Path, classes: dict[str, torch.Tensor]) -> Path:
    for name, imgs in classes.items():
        for i, im in enumerate(imgs):
            save_png(root / name / f"{i:04d}.png", im.permute(1, 2, 0).numpy(), fsync=False)
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small evaluation of a fake generated folder (one class only on each side)."""
    base = tmp_path_factory.mktemp("eval")
    x, y = stripes(80, 0)
    real = _image_folder(base / "real", {"h": x[y == 0], "v": x[y == 1], "only_real": x[:6]})
    g, gy = stripes(40, 5)
    gen = _image_folder(base / "gen", {"h": g[gy == 0], "v": g[gy == 1], "only_gen": g[:4]})
    out = base / "report"
    evaluate(str(real), out, generated=gen, options=EvalOptions(cache_dir=str(base / "cache"), **FAST))
    return out


def test_quick_budget_runs_fewer_classifiers_and_a_memorisation_subset(tmp_path: Path) -> None:
    """--quick: TSTR/TRTS and the 1x sweep (no mixed-class experiment), the nearest-neighbour search on a
    seeded subset of the generated images; the feature metrics are not cut by that subset."""
    from vaemsgan.evaluation.evaluate import quick_options

    x, y = stripes(80, 0)
    real = _image_folder(tmp_path / "real", {"h": x[y == 0], "v": x[y == 1]})
    g, gy = stripes(40, 5)
    gen = _image_folder(tmp_path / "gen", {"h": g[gy == 0], "v": g[gy == 1]})
    fast = {k: v for k, v in FAST.items() if k != "ratios"}
    m = evaluate(
        str(real), tmp_path / "out", generated=gen, options=quick_options(memorisation_per_class=6, **fast)
    )
    cv = m["classifier"]
    assert "mixed" not in cv and "TSTR" in cv["table"]
    assert [item["ratio"] for item in cv["sweep"] if item["ratio"] > 0] == [1.0]
    assert m["memorisation"]["n_gen"] == 12  # 6 per class of the 40 generated
    overall = m["features"]["overall"]  # matched to the real test images, not cut to 6 per class
    assert overall["n_gen"] == overall["n_real"] == 16


def test_report_files_and_metrics(report: Path) -> None:
    m = json.loads((report / "metrics.json").read_text())
    assert m["classes"] == ["h", "v"]
    assert m["classes_only_real"] == ["only_real"] and m["classes_only_generated"] == ["only_gen"]
    assert m["test_images"].startswith("20%")  # no test split: a held-out share
    for part in ("stats", "features", "classifier", "memorisation"):
        assert part in m and m["timings_s"][part] >= 0
    assert m["features"]["overall"]["warning"]  # tiny sets: the FID warning is there
    assert any("only_real" in line for line in m["verdict"]["overall"])
    assert set(m["verdict"]["per_class"]) == {"h", "v"}
    rp = m["memorisation"]["repeats"]
    assert set(rp["per_class"]) == {"h", "v"} and 0.0 <= rp["share"] <= 1.0
    assert any("near-twin in their class" in line for line in m["verdict"]["overall"])


def test_report_is_self_contained(report: Path) -> None:
    page = (report / "report.html").read_text()
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?/""", page)
    srcs = re.findall(r"<img[^>]*\ssrc=\"([^\"]*)\"", page)
    assert len(srcs) >= 8 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "only_real" in page and "only_gen" in page
    # Every part's section (report.SECTIONS), in page order, each with its pictures.
    numbers = [int(n) for n in re.findall(r"<h2>(\d+)\.", page)]
    assert numbers == list(range(1, 8))
    for heading in (
        "Image statistics",
        "Feature-space metrics",
        "Classifier cross-validation",
        "Memorisation",
    ):
        section = page.split(f". {heading}", 1)[1].split("<h2>", 1)[0]
        assert "data:image/png;base64," in section, heading


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (make test installs it via apt when root)"
)
def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        (report / "report.html").as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r'id="render-check" data-ok="(\w+)">([^<]*)<', proc.stdout)
    assert found, proc.stdout[:500]
    n = len(re.findall(r"<img\s", proc.stdout))
    assert found.group(1) == "yes" and found.group(2) == f"images-ok {n}/{n}", found.group(0)


def test_evaluate_refuses_non_empty_report_dir(report: Path) -> None:
    with pytest.raises(OutputExistsError):
        evaluate("fashion-mnist-mini", report, generated=report, options=EvalOptions(**FAST))


@pytest.mark.slow
def test_cli_evaluate_checkpoint_end_to_end(tmp_path: Path, tiny_config, tiny_images) -> None:  # noqa: ANN001
    from vaemsgan.cli.main import main
    from vaemsgan.training.trainer import Trainer

    Trainer(tiny_config(), tiny_images, tmp_path / "run", progress=False).train(10)
    out = tmp_path / "report"
    argv = [
        "evaluate",
        "--checkpoint",
        str(tmp_path / "run"),
        "--real",
        "fashion-mnist-mini",
        "--out",
        str(out),
        "--per-class",
        "24",
        "--seeds",
        "1",
        "--classifier-steps",
        "4",
        "--classifier-width",
        "8",
        "--domain-steps",
        "4",
        "--bootstrap",
        "2",
        "--ratios",
        "0.5",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--threads",
        "1",
        "--no-progress",
    ]
    assert main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["classes"] == ["trouser", "sneaker"] and m["resolution"] == 16
    assert len(m["classes_only_real"]) == 8  # the mini set's other classes, reported
    assert m["counts"]["trouser"]["generated"] == 24
    assert m["classifier"]["table"]["TRTR"]["n"] == 1
    assert main(argv) == 2  # exists now: refused without --force
    assert main([*argv, "--force", "--parts", "stats"]) == 0
    assert "classifier" not in json.loads((out / "metrics.json").read_text())


def test_twin_check_on_a_small_real_training_set_is_a_number() -> None:
    """evaluate --real-per-class 27 (fewer than 50 training images a class): the real-images check of the twin
    share is measured at that n, with thresholds at that n, not left as nan; distinct real images give ~0, one
    image repeated gives 1."""
    from types import SimpleNamespace

    from vaemsgan.data import load_images
    from vaemsgan.evaluation.core import repeats_part

    kw = {"resolution": 16, "classes": ["trouser", "sneaker"]}
    train = load_images("fashion-mnist-mini", per_class=12, seed=1, **kw)
    test = load_images("fashion-mnist-mini", per_class=60, seed=2, **kw)
    real = SimpleNamespace(names=list(train.class_names), train=train, test=test)
    first = torch.cat([(train.labels == c).nonzero()[:1].flatten() for c in range(2)])
    copies = train.subset(first.repeat_interleave(60))
    out = repeats_part(real, copies)
    assert out["share"] == 1.0 and out["per_class"] == {"trouser": 1.0, "sneaker": 1.0}
    assert out["real_training_share"] <= 1 / 12
