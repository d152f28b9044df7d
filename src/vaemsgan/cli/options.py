"""Range-checked option types: every number a command takes has a documented range, checked by argparse.

`Num(int, lo, hi)` (or `Num.key("train.seed")`, which reads the range of a config key) is the `type=` of
every numeric option of every command; `NumList` does the same for comma-separated lists of numbers and
`ClassList` for `--classes`. A value outside the range (0 where 1 is the least, a negative count, NaN,
inf, a number beyond 64 bits) is refused before any work starts, as one line naming the option and its
range, with exit code 2; `--help` shows each range. tests/test_options.py checks that no numeric option
of any command is left without one.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from collections.abc import Sequence
from typing import Any

# Ceilings for counts that have no natural bound: far above any real use, far below 64-bit overflow.
MAX_STEPS = 10**9
MAX_SEED = 2**32 - 1  # every seed is combined with small offsets (x 1_000_003 + k): stays below 2**63
MAX_GENERATED_PER_CLASS = 1_000_000
MAX_MINUTES = 1e6


def _fmt(v: float) -> str:
    if isinstance(v, int) or float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:g}"


class Num:
    """argparse `type=`: parse an int or a finite float and check it lies in [lo, hi] (or (lo, hi])."""

    def __init__(
        self,
        kind: type,
        lo: float,
        hi: float,
        *,
        lo_open: bool = False,
        values: Sequence[int] | None = None,
    ) -> None:
        if kind not in (int, float):
            raise TypeError(f"Num: kind must be int or float, not {kind!r}")
        self.kind, self.lo, self.hi, self.lo_open = kind, lo, hi, lo_open
        self.values = tuple(values) if values is not None else None
        self.__name__ = kind.__name__  # argparse names the type in some messages

    @classmethod
    def key(cls, key: str, **changes: Any) -> Num:
        """The range of config key `key` ('section.name'): its lo/hi (or choices) metadata."""
        from vaemsgan.config import Config

        section, name = key.split(".", 1)
        owner = type(getattr(Config(), section))
        f = {f.name: f for f in dataclasses.fields(owner)}[name]
        hint = typing.get_type_hints(owner)[name]
        kind = next((t for t in (int, float) if t is hint or t in typing.get_args(hint)), None)
        if kind is None:
            raise TypeError(f"config key {key} is not a number")
        meta = f.metadata
        values = meta.get("values") or meta.get("choices")
        lo = meta.get("lo") if meta.get("lo") is not None else (min(values) if values else None)
        hi = meta.get("hi") if meta.get("hi") is not None else (max(values) if values else None)
        if lo is None or hi is None:
            raise TypeError(f"config key {key} has no full range (lo and hi) to check an option against")
        kw: dict[str, Any] = {"values": values, "lo_open": bool(meta.get("lo_open"))}
        kw.update(changes)
        return cls(kind, kw.pop("lo", lo), kw.pop("hi", hi), **kw)

    def describe(self) -> str:
        """The range in words, e.g. 'an integer from 1 to 1000000000' or 'a number > 0 and <= 1'."""
        if self.values is not None:
            return "one of " + ", ".join(_fmt(v) for v in self.values)
        if self.kind is int:
            return f"an integer from {_fmt(self.lo)} to {_fmt(self.hi)}"
        if self.lo_open:
            return f"a number > {_fmt(self.lo)} and <= {_fmt(self.hi)}"
        return f"a number from {_fmt(self.lo)} to {_fmt(self.hi)}"

    def __call__(self, text: str) -> int | float:
        value = self.parse(text)
        if value is None:
            raise argparse.ArgumentTypeError(f"{text!r} is not {self.describe()}")
        return value

    def parse(self, text: str) -> int | float | None:
        """The value, or None when `text` is not a number in range."""
        s = str(text).strip()
        # Plain ASCII numerals only: Python's int() and float() also take '1_000' and other scripts' digits.
        # No number in any range here is longer than 64 characters (and int() of a huge string is slow).
        if len(s) > 64 or not s.isascii() or "_" in s:
            return None
        try:
            if self.kind is int:
                value: int | float = int(s, 10)
            else:
                value = float(s)
        except ValueError:
            return None
        if self.kind is float and not math.isfinite(value):
            return None
        if self.values is not None:
            return value if value in self.values else None
        below = value <= self.lo if self.lo_open else value < self.lo
        if below or value > self.hi:
            return None
        return value

    def __repr__(self) -> str:
        return f"Num({self.describe()})"


class NumList:
    """argparse `type=`: comma-separated numbers, each checked by `item`, e.g. '0.5,1,2,4'."""

    def __init__(self, item: Num, *, max_items: int = 32) -> None:
        self.item, self.max_items = item, max_items
        self.__name__ = "list"

    def describe(self) -> str:
        return f"comma-separated numbers, each {self.item.describe()} (at most {self.max_items})"

    def __call__(self, text: str) -> tuple[int | float, ...]:
        parts = [p.strip() for p in str(text).split(",") if p.strip()]
        if not parts:
            raise argparse.ArgumentTypeError(f"{text!r} is empty: expected {self.describe()}")
        if len(parts) > self.max_items:
            raise argparse.ArgumentTypeError(f"{text!r} has {len(parts)} items: expected {self.describe()}")
        out = []
        for p in parts:
            v = self.item.parse(p)
            if v is None:
                raise argparse.ArgumentTypeError(f"{p!r} in {text!r} is not {self.item.describe()}")
            out.append(v)
        return tuple(out)


class ClassList:
    """argparse `type=`: comma-separated class names; an empty or repeated name is an error in every command."""

    __name__ = "class list"

    def describe(self) -> str:
        return "comma-separated distinct class names"

    def __call__(self, text: str) -> list[str]:
        names = [n.strip() for n in str(text).split(",")]
        if not any(names):
            raise argparse.ArgumentTypeError(f"{text!r} names no class: expected {self.describe()}")
        if "" in names:
            raise argparse.ArgumentTypeError(f"{text!r} has an empty name: expected {self.describe()}")
        seen: set[str] = set()
        for n in names:
            if n in seen:
                raise argparse.ArgumentTypeError(f"class {n!r} is repeated in {text!r}: name each class once")
            seen.add(n)
        return names


CLASSES = ClassList()


def add_limit_options(p: argparse.ArgumentParser, config: bool = False) -> None:
    """Resource limits checked before decoding or reading (docs/RELIABILITY.md); raise them here.
    `main` applies them for the one command (limits.raised)."""
    from vaemsgan.limits import DEFAULT_MAX_CONFIG_KB, DEFAULT_MAX_IMAGE_MB

    g = p.add_argument_group("limits")
    g.add_argument(
        "--max-image-mb",
        type=Num(int, 1, 1 << 20),
        metavar="MB",
        help=f"skip images that would decode to more than MB MiB in memory, judged from the header before "
        f"decoding, in any pixel format (default {DEFAULT_MAX_IMAGE_MB})",
    )
    if config:
        g.add_argument(
            "--max-config-kb",
            type=Num(int, 1, 1 << 20),
            metavar="KB",
            help=f"refuse config files larger than KB KiB, checked before reading (default {DEFAULT_MAX_CONFIG_KB})",
        )


def add_range_to_help(parser: argparse.ArgumentParser) -> None:
    """Append each checked option's range to its --help text, in this parser and all its subparsers."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                add_range_to_help(sub)
            continue
        describe = getattr(action.type, "describe", None)
        if describe is not None and action.help is not argparse.SUPPRESS:
            rng = describe()
            if rng not in (action.help or ""):
                action.help = f"{action.help} [{rng}]" if action.help else f"[{rng}]"


def numeric_actions(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    """(command, action) for every option of every subcommand: what tests/test_options.py walks."""
    out: list[tuple[str, argparse.Action]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [(name, a) for a in sub._actions if a.option_strings]
    return out


def add_crop_option(p: Any, what: str) -> None:
    """`--crop N` (config key data.crop) on a parser or group: `what` says what it does there."""
    p.add_argument("--crop", type=Num.key("data.crop"), metavar="N", help=what)


RATIOS = NumList(Num(float, 0, 100, lo_open=True))  # synthetic/real ratios: each in (0, 100]


def add_gain_arm_options(p: Any, interpolation_default: str, weak_classes_default: str) -> None:
    """The gain study's synthetic arms, the same in `evaluate --augmentation-gain` and `reproduce gain`:
    --gain-ratios, --gain-temperatures, --gain-interpolation, --gain-weak-classes."""
    p.add_argument(
        "--gain-ratios",
        type=RATIOS,
        metavar="R,..",
        help="gain: synthetic/real ratios per class of the synthetic arms (default 0.5,1,2)",
    )
    p.add_argument(
        "--gain-temperatures",
        type=NumList(Num(float, 0, 100)),
        metavar="T,..",
        help="gain: temperatures of the anchored-variations arms (default 0.5,1)",
    )
    add_gain_interpolation_option(p, interpolation_default)
    add_gain_weak_classes_option(p, weak_classes_default)


def add_classifier_option(p: Any, what: str) -> None:
    """`--classifier NAME`, a named judge (evaluation.classifier.CLASSIFIER_PRESETS): `what` says where it judges."""
    from vaemsgan.evaluation.classifier import CLASSIFIER_PRESETS

    p.add_argument("--classifier", choices=sorted(CLASSIFIER_PRESETS), help=what)


def add_gain_policy_option(p: Any, what: str) -> None:
    """`--gain-policy`: the augmentation of the gain study's baseline and of every synthetic arm."""
    from vaemsgan.evaluation.classifier import AUGMENT_POLICIES

    p.add_argument("--gain-policy", choices=sorted(AUGMENT_POLICIES), help=what)


def default_gain_policy(classifier: str | None) -> str:
    """The gain baseline's augmentation where `--gain-policy` is not given. Colour photographs (`--classifier
    cifar`) are compared against their standard augmentation, crops + horizontal flips (no rotation or
    scale): the baseline a CIFAR user knows. Elsewhere `classical` (crops, flips where allowed, rotation, scale)."""
    return "standard" if classifier == "cifar" else "classical"


def add_gain_interpolation_option(p: Any, default: str) -> None:
    """--gain-interpolation LO,HI|none, the gain study's arm of latent interpolations (evaluation/gain_arms.py);
    parsed to (lo, hi), or () for none."""
    from vaemsgan.evaluation.gain import INTERPOLATION_NEIGHBOURS

    p.add_argument(
        "--gain-interpolation",
        type=interpolation_range,
        metavar="LO,HI|none",
        help="gain: an arm of latent interpolations between each real training image and one of its "
        f"{INTERPOLATION_NEIGHBOURS} nearest neighbours of the class, (1-a) z + a z_neighbour with a ~ U[LO,HI] (default {default})",
    )


def add_gain_weak_classes_option(p: Any, default: str) -> None:
    """--gain-weak-classes yes|no, the gain study's arm of prior samples shared out by the class errors."""
    p.add_argument(
        "--gain-weak-classes",
        choices=["yes", "no"],
        help="gain: an arm of prior samples, as many as the prior arm's, shared out over the classes in "
        "proportion to the baseline's 2-fold cross-validated error on the real training images (the weakest "
        f"classes get the most; default {default})",
    )


def interpolation_range(text: str) -> tuple[float, ...]:
    """argparse `type=` of --gain-interpolation: 'LO,HI' -> (lo, hi) with 0 <= lo <= hi <= 1, 'none' -> ()."""
    from vaemsgan.errors import ConfigError
    from vaemsgan.generation.variations import parse_mix

    if text.strip().lower() == "none":
        return ()
    try:
        mix = parse_mix(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e).replace("--mix ", "", 1)) from None
    if mix is None:
        raise argparse.ArgumentTypeError("must be LO,HI (e.g. 0.25,0.75) or none, got ''")
    return mix


# Option types and helpers more than one command shares.
RESOLUTIONS = (16, 32, 64, 128, 256)
SEED = Num(int, 0, MAX_SEED)
GEN_PER_CLASS = Num(int, 1, MAX_GENERATED_PER_CLASS)


def device_of(name: str) -> Any:
    """The torch.device an option names (`auto`, `cpu`, `cuda`, `cuda:N`), checked."""
    from vaemsgan.inference import resolve_device

    return resolve_device(name)
