"""Running small CPU jobs side by side: N single-thread jobs use N cores better than one N-thread job."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

T = TypeVar("T")


@contextmanager
def single_threaded(on: bool) -> Iterator[None]:
    """One intra-op thread per calling thread while `on` (jobs run side by side), restored after.

    torch's thread count is read by every thread when it first runs an operator, so threads started
    inside this block (a pool's workers) keep one intra-op thread each."""
    before = torch.get_num_threads()
    if on:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def map_side_by_side(
    fn: Callable[..., T], jobs: Sequence[tuple[Any, ...]], workers: int | None = None
) -> list[T]:
    """[fn(*job) for job in jobs], up to `workers` (default: torch's thread count) at once, each on one
    intra-op thread; results in the order of `jobs`. Each job's result must not depend on which thread ran it
    (its own seeded generator, no shared state)."""
    workers = max(1, min(len(jobs), workers or torch.get_num_threads()))
    if workers == 1:
        return [fn(*job) for job in jobs]
    with single_threaded(True), ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda job: fn(*job), jobs))
