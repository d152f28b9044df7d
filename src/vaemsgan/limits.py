"""Resource limits checked before anything is decoded or read whole (docs/RELIABILITY.md, "Limits").

An image may decode to at most `max_image_bytes` of pixel memory, judged from its header (width x
height x the bytes per pixel of its mode: 1 for grey and palette, 2 for 16-bit, 4 for RGB, RGBA, 32-bit
and float) before a pixel is decoded. A config file may be at most `max_config_bytes` long, checked
before it is read. The CLI raises them with `--max-image-mb` and `--max-config-kb`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

DEFAULT_MAX_IMAGE_MB = 256  # 16384 x 16384 8-bit grey, 8192 x 8192 RGB(A), 11585 x 11585 16-bit grey
DEFAULT_MAX_CONFIG_KB = 1024  # a full config is about 2 KiB


@dataclass
class Limits:
    max_image_bytes: int = DEFAULT_MAX_IMAGE_MB << 20
    max_config_bytes: int = DEFAULT_MAX_CONFIG_KB << 10


LIMITS = Limits()


@contextlib.contextmanager
def raised(image_mb: int | None = None, config_kb: int | None = None) -> Iterator[Limits]:
    """Within the block, the given limits replace the defaults (None keeps the current one)."""
    old = Limits(LIMITS.max_image_bytes, LIMITS.max_config_bytes)
    if image_mb is not None:
        LIMITS.max_image_bytes = int(image_mb) << 20
    if config_kb is not None:
        LIMITS.max_config_bytes = int(config_kb) << 10
    try:
        yield LIMITS
    finally:
        LIMITS.max_image_bytes, LIMITS.max_config_bytes = old.max_image_bytes, old.max_config_bytes


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def check_memory(need: int, what: str, fix: str) -> None:
    """ConfigError, before any work, if `need` bytes exceed half the memory available now."""
    from vaemsgan.errors import ConfigError

    avail = available_memory()
    if avail is not None and need > avail // 2:
        raise ConfigError(
            f"{what} needs about {_gib(need)} of memory, more than half of the {_gib(avail)} available: {fix}"
        )


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
