"""Bulk work without the cyclic garbage collector, and its pace over a command's process.

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


# ---------------------------------------------------------------- a process's own lifetime

# What a command's start-up makes (its modules' classes, functions and constants, its
# configuration) lives as long as the process does. At CPython's own pace, a young
# collection every 700 net allocations, the collector walks those objects again and again
# while the modules load, and the interpreter's finalization walks them once more at exit:
# together about 20 ms of a `git freq run` over a few subjects, whose whole life is a few
# hundred. A command runs at a slower pace instead, and exits past the collector.
COMMAND_THRESHOLD = 50_000  # allocations between young collections in a command's process


def starting() -> None:
    """A command's process starts: young collections every COMMAND_THRESHOLD allocations.
    The collector still runs, so a long command's memory stays bounded; what it makes and
    drops without cycles goes by reference counting at once, as always."""
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(COMMAND_THRESHOLD, older, oldest)


def ending() -> None:
    """The process is about to exit: every object leaves the collector's sight (gc.freeze),
    so that the interpreter's finalization frees them by reference counting without walking
    them all first. Files are closed by the code that opened them (`with`), never by a
    collection at exit."""
    gc.freeze()
