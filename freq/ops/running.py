"""`git freq run`: a Worker over the App's store and configuration, with the CLI's signal
handling, the parent watch of git's wrapper, and remote mode.

Its own module, apart from the other subject actions (freq.ops.subjects): a run imports the
loop and what it needs, not the result records and readers of `status`, `show` or `log`
(start-up is most of what a short run costs, bench figure n).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from freq.errors import UsageError
from freq.ops.app import App
from freq.report import Reporter

if TYPE_CHECKING:
    from freq.loop import RunSummary


def run(
    app: App,
    *,
    once: bool = False,
    until_idle: bool = False,
    factories: Sequence[str] = (),
    max_parallel: int | None = None,
    reporter: Reporter | None = None,
    handle_signals: bool = False,
    watch_parent: bool = False,
    remote: str | None = None,
) -> RunSummary:
    """Run steps: one cycle, until idle, or until interrupted.

    With `handle_signals` (the CLI), the first SIGINT/SIGTERM stops claiming and lets
    running steps finish (a `draining` progress event says how many); the second kills their
    process groups and releases their claims. `stopped_by` names the first signal.
    With `watch_parent` (the CLI), a run started by git's wrapper does what the second
    signal does when that git process exits; `stopped_by` is then `parent`.
    `remote` (or `remote:` of frequency.yaml): coordinate through that git remote, every
    write a compare-and-swap push to it (freq.ops.remote).
    """
    for f in factories:
        app.factory(f)
    if max_parallel is not None and max_parallel < 1:
        raise UsageError("max_parallel must be at least 1")
    from freq.loop import Worker

    if remote is not None or app.config.settings.remote is not None:
        from freq.ops.remote import connect

        connect(app, remote)

    w = Worker(app.store, app.config, clock=app.clock, worker=app.worker, reporter=reporter)
    from freq import proc

    signals = proc.handle_interrupts(w.stop, w.kill, clock=app.clock) if handle_signals else None
    parent = proc.watch_parent(w.kill) if watch_parent else None
    try:
        summary = w.run(
            once=once,
            until_idle=until_idle,
            factories=tuple(factories) or None,
            max_parallel=max_parallel,
        )
    finally:
        if signals is not None:
            signals.restore()
        if parent is not None:
            parent.close()
    if parent is not None and parent.gone and summary.interrupted:  # it ended the run
        summary = dataclasses.replace(summary, stopped_by="parent")
    elif signals is not None and signals.name is not None:
        summary = dataclasses.replace(summary, stopped_by=signals.name)
    return summary
