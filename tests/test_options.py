"""Reliability round 2 (issue 14), family 1: every numeric option of every command has a range.

Each value either parses (and then lies in the option's documented range, as an independent oracle
computes it) or is refused by argparse with exit 2 and one line naming the option and its range. A few
accepted boundary values run on a tiny model; the rest is established by the validation layer (the
option types, and the config they feed), so the whole file stays fast.
"""

from __future__ import annotations

import argparse
import math
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaemsgan.cli import commands, train_cmd
from vaemsgan.cli.main import build_parser, main
from vaemsgan.cli.options import MAX_SEED, ClassList, Num, NumList, numeric_actions
from vaemsgan.config import Config, apply_overrides
from vaemsgan.errors import ConfigError
from vaemsgan.training.trainer import Trainer

PARSER = build_parser()
ALL_OPTIONS = numeric_actions(PARSER)
CHECKED = [(cmd, a) for cmd, a in ALL_OPTIONS if isinstance(a.type, (Num, NumList))]
# The least each command needs to parse (paths need not exist: parsing checks no file).
BASE: dict[str, list[str]] = {
    "train": ["--out", "o"],
    "generate": ["--checkpoint", "c", "--per-class", "1", "--out", "o"],
    "reconstruct": ["--checkpoint", "c", "--input", "i", "--out", "o"],
    "interpolate": ["--checkpoint", "c", "--out", "o.png"],
    "check-data": ["p"],
    "presets": [],
    "demo": [],
    "evaluate": ["--real", "r", "--generated", "g", "--out", "o"],
    "reproduce": ["table2", "--out", "o"],
}
TINY_NETS = [
    "--resolution", "16", "--threads", "1", "--no-progress", "--device", "cpu",
    "--set", "model.g_width=8", "--set", "model.d_width=8", "--set", "model.e_width=8",
    "--set", "model.latent_dim=8",
]  # fmt: skip
TINY = [*TINY_NETS, "--batch-size", "4"]
MINI = ["--data", "fashion-mnist-mini", "--per-class", "4", "--classes", "trouser,sneaker"]


def parse(cmd: str, *extra: str) -> tuple[argparse.Namespace | None, int, str]:
    """(namespace or None, exit code, stderr) of parsing `vaemsgan cmd BASE extra`."""
    import contextlib
    import io

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            ns = PARSER.parse_args([cmd, *BASE[cmd], *extra])
    except SystemExit as exc:
        return None, int(exc.code or 0), err.getvalue()
    return ns, 0, err.getvalue()


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vaemsgan: error: "), err
    assert "Traceback" not in err
    return lines[0]


def expected(num: Num, text: str) -> int | float | None:
    """The independent oracle: the value `text` should parse to under `num`, or None (refused)."""
    s = text.strip()
    if not s.isascii() or "_" in s:  # plain ASCII numerals: no '1_000', no other scripts' digits
        return None
    if num.kind is int:
        if not re.fullmatch(r"[+-]?[0-9]{1,64}", s):
            return None
        v: int | float = int(s)
    else:
        try:
            d = Decimal(s)
        except InvalidOperation:
            return None
        if not d.is_finite():
            return None
        v = float(s)
        if not math.isfinite(v):
            return None
    if num.values is not None:
        return v if v in num.values else None
    if v > num.hi or v < num.lo or (num.lo_open and v == num.lo):
        return None
    return v


# ---------------------------------------------------------------- every option is covered


def test_every_numeric_option_of_every_command_is_range_checked() -> None:
    unchecked = []
    for cmd, a in ALL_OPTIONS:
        numeric_default = isinstance(a.default, (int, float)) and not isinstance(a.default, bool)
        if a.type in (int, float) or (numeric_default and not isinstance(a.type, (Num, NumList))):
            unchecked.append(f"{cmd} {a.option_strings[0]}")
        if a.dest in ("ratios", "gain_ratios", "d_kernels", "snapshot_minutes"):
            assert isinstance(a.type, NumList), (cmd, a.dest)
        if a.dest == "classes":
            assert isinstance(a.type, ClassList), cmd
    assert not unchecked, unchecked
    assert len(CHECKED) >= 70  # train alone has 30
    for cmd, a in CHECKED:  # --help shows each range
        assert a.type.describe() in (a.help or ""), (cmd, a.option_strings)
    for cmd in ("train", "generate", "evaluate", "reproduce", "check-data", "interpolate", "demo"):
        assert any(c == cmd for c, _ in CHECKED), cmd


def test_config_mapped_options_agree_with_the_config_ranges() -> None:
    """A value train's option accepts is accepted by the config key it sets, at both ends of the range."""
    train = {a.dest: a for cmd, a in CHECKED if cmd == "train"}
    for flag, (key, _) in train_cmd.TRAIN_FLAGS.items():
        a = train.get(flag)
        if a is None or not isinstance(a.type, Num):
            continue
        num = a.type
        ends = list(num.values) if num.values is not None else [num.lo, num.hi]
        # Cross-field rules aside (the most critic scales need the largest resolution), both ends fit.
        base = {} if key == "data.resolution" else {"data.resolution": 256}
        for v in ends:
            apply_overrides(Config(), {**base, key: v})
        if num.values is None:
            for outside in (num.lo - 1, num.hi * 2 + 1):
                with pytest.raises(ConfigError, match=re.escape(key)):
                    apply_overrides(Config(), {key: outside})


# ---------------------------------------------------------------- property: accepted in range, or one line

_texts = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "0",
            "-0",
            "1",
            "2",
            "-1",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1e3",
            "1e-3",
            "0x10",
            "",
            " 5 ",
            "1.5",
            "2.0",
            str(2**63),
            str(2**63 + 1),
            str(2**64),
            "9" * 30,
            "9" * 70,
            "1,2",
            "abc",
            "1_000",
            "٣",
        ]
    ),  # fmt: skip
)


@st.composite
def _option_and_text(draw: st.DrawFn) -> tuple[str, argparse.Action, str]:
    cmd, a = draw(st.sampled_from(CHECKED))
    num = a.type.item if isinstance(a.type, NumList) else a.type
    edges = [num.lo, num.hi, num.lo - 1, num.hi + 1, *(num.values or ())]
    if num.kind is float:
        edges += [math.nextafter(num.lo, -math.inf), math.nextafter(num.hi, math.inf), num.hi * 10]
    text = draw(st.one_of(_texts, st.sampled_from(edges).map(str)))
    if isinstance(a.type, NumList) and draw(st.booleans()):
        text = f"{draw(st.sampled_from(edges))},{text}"
    return cmd, a, text


@given(_option_and_text())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_numeric_option_property_in_range_or_one_line_exit_2(case: tuple[str, argparse.Action, str]) -> None:
    cmd, a, text = case
    opt = a.option_strings[0]
    ns, rc, err = parse(cmd, f"{opt}={text}")
    if isinstance(a.type, NumList):
        items = [p.strip() for p in text.split(",") if p.strip()]
        want = [expected(a.type.item, p) for p in items]
        ok = bool(items) and len(items) <= a.type.max_items and None not in want
    else:
        want = expected(a.type, text)
        ok = want is not None
    if ok:
        assert ns is not None and rc == 0, (cmd, opt, text, err)
        got = getattr(ns, a.dest)
        assert (list(got) if isinstance(a.type, NumList) else got) == want
        assert all(isinstance(v, a.type.item.kind if isinstance(a.type, NumList) else a.type.kind) for v in
                   (got if isinstance(a.type, NumList) else [got]))  # fmt: skip
    else:
        assert ns is None and rc == 2, (cmd, opt, text)
        line = one_line(err)
        assert f"argument {opt}" in line
        describe = a.type.item.describe() if isinstance(a.type, NumList) else a.type.describe()
        assert describe in line or a.type.describe() in line, line


# ---------------------------------------------------------------- the examples of issue 14, and runs


@pytest.mark.parametrize(
    ("cmd", "extra", "needle"),
    [
        ("train", ["--seed", str(2**63 + 5)], "argument --seed: '9223372036854775813' is not an integer from 0 to 4294967295"),
        ("train", ["--epochs", "0"], "argument --epochs: '0' is not a number > 0 and <= 1000000"),
        ("train", ["--steps", "0"], "argument --steps: '0' is not an integer from 1 to 1000000000"),
        ("train", ["--batch-size", "1e400"], "argument --batch-size"),
        ("train", ["--lr-g", "inf"], "argument --lr-g: 'inf' is not a number from 0 to 1"),
        ("train", ["--budget-minutes", "-3"], "argument --budget-minutes"),
        ("generate", ["--truncation", "0"], "argument --truncation: '0' is not a number > 0 and <= 100"),
        ("generate", ["--keep-fraction", "1.5"], "argument --keep-fraction"),
        ("generate", ["--per-class", "-2"], "argument --per-class"),
        ("interpolate", ["--steps", "1"], "argument --steps: '1' is not an integer from 2 to 1000"),
        ("evaluate", ["--ratios", "1,nan"], "argument --ratios: 'nan' in '1,nan' is not a number > 0"),
        ("evaluate", ["--threads", "-1"], "argument --threads"),
        ("reproduce", ["--budget", "0"], "argument --budget"),
        ("check-data", ["--per-class", "0"], "argument --per-class"),
        ("demo", ["--minutes", "nan"], "argument --minutes"),
    ],
)  # fmt: skip
def test_issue_examples_are_one_line(cmd: str, extra: list[str], needle: str, capsys) -> None:
    _, rc, err = parse(cmd, *extra)
    assert rc == 2 and needle in one_line(err)


@pytest.mark.parametrize("cmd", ["train", "generate", "interpolate"])
def test_repeated_classes_are_the_same_error_in_every_command(cmd: str) -> None:
    for text, needle in (("a,b,a", "class 'a' is repeated in 'a,b,a'"), ("a,,b", "'a,,b' has an empty name")):
        _, rc, err = parse(cmd, "--classes", text)
        assert rc == 2 and f"argument --classes: {needle}" in one_line(err)


@pytest.fixture(scope="module")
def boundary_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`train` at the edge of its ranges: the largest seed, a vanishing --epochs (one step)."""
    run = tmp_path_factory.mktemp("edge") / "run"
    argv = ["train", *MINI, "--out", str(run), *TINY, "--seed", str(MAX_SEED), "--epochs", "1e-9"]
    assert main(argv) == 0
    return run


def test_boundary_values_are_accepted_and_run(boundary_run: Path, tmp_path: Path, capsys) -> None:
    from vaemsgan.checkpoint import list_checkpoints, load_checkpoint

    state = load_checkpoint(list_checkpoints(boundary_run)[-1])
    assert state["step"] == 1 and state["config"]["train"]["seed"] == MAX_SEED
    out = tmp_path / "gen"
    argv = ["generate", "--checkpoint", boundary_run, "--out", out, "--per-class", "1", "--seed", MAX_SEED,
            "--truncation", "100", "--batch-size", "1", "--device", "cpu", "--no-progress"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0
    assert len(list(out.glob("*/*.png"))) == 2
    grid = tmp_path / "grid.png"
    argv = ["interpolate", "--checkpoint", boundary_run, "--out", grid, "--steps", "2", "--seed", MAX_SEED,
            "--device", "cpu"]  # fmt: skip
    assert main([str(a) for a in argv]) == 0 and grid.is_file()
    capsys.readouterr()


_cheap_train = st.one_of(
    st.tuples(st.just("--seed"), st.integers(0, MAX_SEED).map(str)),
    st.tuples(st.just("--lr-g"), st.floats(0, 1).map(repr)),
    st.tuples(st.just("--gp-weight"), st.floats(0, 1e6).map(repr)),
    st.tuples(st.just("--n-critic"), st.integers(1, 2).map(str)),
    st.tuples(st.just("--batch-size"), st.integers(2, 8).map(str)),
    st.tuples(st.just("--epochs"), st.floats(1e-9, 0.5).map(repr)),
)


@given(_cheap_train)
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_accepted_values_train_a_tiny_model(
    tmp_path_factory: pytest.TempPathFactory, case: tuple[str, str]
) -> None:
    """A few accepted values of cheap options, drawn at random, train for real (one step)."""
    opt, text = case
    root = tmp_path_factory.mktemp("accepted")
    steps = [] if opt == "--epochs" else ["--steps", "1"]
    nets = TINY_NETS if opt == "--batch-size" else TINY
    assert main(["train", *MINI, "--out", str(root / "run"), *nets, *steps, opt, text]) == 0
    assert list((root / "run" / "checkpoints").glob("step-*.pt"))


# ---------------------------------------------------------------- memory that cannot fit


def test_enormous_per_class_refused_up_front_and_next_run_works(
    boundary_run: Path, tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vaemsgan import limits

    monkeypatch.setattr(limits, "available_memory", lambda: 2 << 30)  # a 2 GiB machine
    out = tmp_path / "gen"
    base = [
        "generate",
        "--checkpoint",
        str(boundary_run),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--no-progress",
    ]
    rc = main([*base, "--per-class", "1000000"])
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and "--per-class 1000000 needs about" in line and "use a smaller --per-class" in line
    assert not out.exists()  # nothing created: nothing blocks the next run
    rc = main([*base, "--per-class", "20000", "--filter", "dedupe", "--keep-fraction", "0.5"])
    assert rc == 2 and "--filter dedupe needs about" in one_line(capsys.readouterr().err)
    assert not out.exists()
    assert main([*base, "--per-class", "2"]) == 0
    assert len(list(out.glob("*/*.png"))) == 4


def test_seeds_at_the_top_of_the_range_do_not_overflow(tiny_config, tiny_images, tmp_path: Path) -> None:
    """Seeds are combined with offsets (x 1_000_003 + epoch, x 100_003 + class): still valid torch seeds."""
    from vaemsgan.generation.sampler import latents

    cfg = tiny_config(train={"seed": MAX_SEED})
    trainer = Trainer(cfg, tiny_images, tmp_path / "r", progress=False, log=lambda s: None)
    trainer.train(1)
    z = latents(MAX_SEED, 9, 3, 8, 1.5)
    assert z.shape == (3, 8) and bool(torch.isfinite(z).all()) and float(z.abs().max()) <= 1.5


def test_data_that_cannot_fit_is_refused_before_loading(
    monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path
) -> None:
    from vaemsgan import limits

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(limits, "available_memory", lambda: 64 << 20)  # a 64 MiB machine
    rc = main(["train", *MINI[:2], "--out", "o-never", "--resolution", "256", "--steps", "1"])
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and "fashion-mnist-mini: 2000 images at 256 px x 1 channel(s) needs about 250 MiB" in line
    assert "lower --resolution or take a subset" in line and not Path("o-never").exists()


def test_failed_allocation_is_one_line_not_a_traceback(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    def alloc_fails(args: argparse.Namespace) -> int:
        raise RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
            "you tried to allocate 1099511627776 bytes. Error code 12 (Cannot allocate memory)"
        )

    monkeypatch.setattr(commands, "cmd_presets", alloc_fails)
    assert main(["presets"]) == 1
    assert "out of memory ([enforce fail" in one_line(capsys.readouterr().err)
    monkeypatch.setattr(commands, "cmd_presets", lambda args: 1 / 0)  # a bug still shows its traceback
    with pytest.raises(ZeroDivisionError):
        main(["presets"])
