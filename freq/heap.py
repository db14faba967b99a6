"""Bulk work without the cyclic garbage collector.

Imports only the standard library. A whole-state read or plan makes hundreds of thousands
of objects (a Subject, its documents, a decision per subject) and no reference cycles, and
CPython's collector, triggered by allocations, walks every tracked object at each of its
full collections: at 100,000 subjects it took a fifth of a load + plan. Such work runs with
the collector paused; what it frees goes by reference counting as always.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Callable, Iterator
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """The collector paused for the length of the `with`, if it was running. Threads may
    nest it: only the one that paused it starts it again, so it never stays off."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def without_gc(fn: Callable[P, T]) -> Callable[P, T]:
    """`fn` run under paused_gc."""

    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        with paused_gc():
            return fn(*args, **kwargs)

    return run
