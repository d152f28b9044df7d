"""One config value against its field: coerced to the field's type hint, then checked against the choices and
range in its metadata (`config._opt`) and the rules of single keys that metadata cannot express. Knows
nothing of the sections' contents: `config.py` hands it the section type and the field."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from vaemsgan.errors import ConfigError

_HINTS: dict[type, dict[str, Any]] = {}


def _hint(section_type: type, name: str) -> Any:
    if section_type not in _HINTS:
        _HINTS[section_type] = typing.get_type_hints(section_type)
    return _HINTS[section_type][name]


def check_value(key: str, section_type: type, f: dataclasses.Field, v: Any) -> Any:
    """`v` for the field `f` of the config section `section_type`, named `key` ('model.d_kernels') in messages:
    coerced to the field's type (a YAML or command-line string, a list written 'a,b'), then checked against
    its choices, range and any rule of its own; ConfigError (one line) when it does not fit."""
    v = _coerce(key, _hint(section_type, f.name), v)
    meta = f.metadata
    if v is None:
        return v
    if meta.get("choices") and v not in meta["choices"]:
        raise ConfigError(
            f"config key '{key}' = {v!r}: allowed values are {', '.join(map(str, meta['choices']))}"
        )
    lo, hi = meta.get("lo"), meta.get("hi")
    if (
        isinstance(v, (int, float))
        and not isinstance(v, bool)
        and ((lo is not None and v < lo) or (hi is not None and v > hi))
    ):
        rng = f"{lo if lo is not None else '-inf'} to {hi if hi is not None else 'inf'}"
        raise ConfigError(f"config key '{key}' = {v!r} is out of range ({rng})")
    rule = _KEY_RULES.get(key)
    if rule is not None:
        rule(v)
    return v


def _check_resolution(res: int) -> None:
    if res & (res - 1):
        raise ConfigError(f"config key 'data.resolution' = {res}: must be a power of two from 16 to 256")


def _check_d_kernels(kernels: list[int]) -> None:
    if not kernels:
        raise ConfigError("config key 'model.d_kernels' must name at least one kernel size")
    for k in kernels:
        if k not in (1, 3, 5, 7, 9):
            raise ConfigError(f"config key 'model.d_kernels' has {k}: allowed kernel sizes are 1, 3, 5, 7, 9")


def _check_d_hires_kernels(kernels: list[int]) -> None:
    for k in kernels:
        if k not in (1, 3, 5, 7, 9):
            raise ConfigError(
                f"config key 'model.d_hires_kernels' has {k}: allowed kernel sizes are 1, 3, 5, 7, 9"
            )


def _check_snapshot_minutes(marks: list[float]) -> None:
    for m in marks:
        if not 0 < m <= 1e6:
            raise ConfigError(
                f"config key 'train.snapshot_minutes' has {m}: each mark must be in (0, 1e6] minutes"
            )


def _check_lr_milestones(steps: list[int]) -> None:
    for m in steps:
        if not 1 <= m <= 10**9:
            raise ConfigError(
                f"config key 'train.lr_milestones' has {m}: each milestone is a generator step from 1 to 1e9"
            )


# Checks of one key that its metadata (choices, lo, hi) cannot express.
_KEY_RULES: dict[str, Any] = {
    "data.resolution": _check_resolution,
    "model.d_kernels": _check_d_kernels,
    "model.d_hires_kernels": _check_d_hires_kernels,
    "train.snapshot_minutes": _check_snapshot_minutes,
    "train.lr_milestones": _check_lr_milestones,
}


def _coerce(key: str, hint: Any, v: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if v is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(key, inner[0], v)
    if origin is list:
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        if not isinstance(v, (list, tuple)):
            raise ConfigError(f"config key '{key}' must be a list, got {v!r}")
        return [_coerce(key, args[0], x) for x in v]
    if hint is bool:
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return v.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"config key '{key}' must be true or false, got {v!r}")
    if hint is int:
        if isinstance(v, bool):
            raise ConfigError(f"config key '{key}' must be an integer, got {v!r}")
        if isinstance(v, int):
            return v
        if isinstance(v, float) and v.is_integer():
            return int(v)
        if isinstance(v, str):
            try:
                return int(v)
            except ValueError:
                pass
        raise ConfigError(f"config key '{key}' must be an integer, got {v!r}")
    if hint is float:
        if isinstance(v, bool):
            raise ConfigError(f"config key '{key}' must be a number, got {v!r}")
        try:
            out = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"config key '{key}' must be a number, got {v!r}") from None
        if out != out or out in (float("inf"), float("-inf")):
            raise ConfigError(f"config key '{key}' must be a finite number, got {v!r}")
        return out
    if hint is str:
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            raise ConfigError(f"config key '{key}' must be a string, got {v!r}")
        return str(v)
    return v
