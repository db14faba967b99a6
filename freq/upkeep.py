"""git's own upkeep of the object store while a run goes on: `git gc --auto`, as git's
porcelain runs it after its writes (`git commit`, `git fetch`).

Every batch Frequency writes whole is a pack (an `add` of many subjects, each archive
batch of up to 500), and so is every fetch that brought objects in remote mode; dulwich
tries each pack in turn before the loose objects, so a worker that never repacked would
read slower by the hour (202 packs made one CAS push cost 1.95x in figure
(n)). `git gc --auto` does nothing below git's own limits (gc.autoPackLimit, 50 packs;
gc.auto, about 6,700 loose objects), honours the repository's settings (gc.auto=0 turns it
off; gc.autoDetach, on by default, sends it to the background at once), and keeps every
unreachable object younger than two weeks: safe beside writers (README, Housekeeping).
"""

from __future__ import annotations

import threading
from pathlib import Path

from freq import proc

GC_TIMEOUT = 3600.0  # seconds: gc.autoDetach=false keeps a repack of months in the foreground


def gc_auto(root: Path | str) -> str | None:
    """Run `git gc --auto --quiet` in the repository at `root`: None when it ended well,
    else the one line that says why not."""
    done = proc.git(["gc", "--auto", "--quiet"], cwd=root, timeout=GC_TIMEOUT)
    if done.ok:
        return None
    return f"git gc --auto failed: {done.why()}"


class Background:
    """`gc_auto` on a thread of its own, so that a run's first steps start while git looks
    at its object store (a git process: about as long as a `true` step's whole attempt)."""

    def __init__(self, root: Path | str) -> None:
        self.failed: str | None = None
        self._thread = threading.Thread(target=self._run, args=(root,), name="freq-gc", daemon=True)
        self._thread.start()

    def _run(self, root: Path | str) -> None:
        self.failed = gc_auto(root)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait(self) -> str | None:
        """Wait for git to end (its foreground part: gc.autoDetach sends a repack to the
        background); None when it ended well, else the line that says why not."""
        self._thread.join()
        return self.failed
