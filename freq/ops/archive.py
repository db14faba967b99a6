"""`git freq archive [--dry-run]`: fold finished subjects into refs/frequency/archive/*."""

from __future__ import annotations

from dataclasses import dataclass

from freq import archival, archiver, upkeep
from freq.model import format_duration
from freq.ops.app import App


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveRow:
    """One factory's part of an archive pass."""

    factory: str
    subjects: tuple[str, ...]  # folded (a dry run: due)
    commits: tuple[str, ...] = ()  # the archive commits written
    moved: tuple[str, ...] = ()  # due, but moved while the pass ran: left live


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveResult:
    """What an archive pass did (or, with dry_run, would do)."""

    dry_run: bool
    after: str  # archive_after as frequency.yaml says it (default 1d)
    factories: tuple[ArchiveRow, ...]
    # the line saying why `git gc --auto` after the pass failed (the pass itself stands)
    upkeep: str | None = None

    @property
    def total(self) -> int:
        return sum(len(r.subjects) for r in self.factories)


def archive(app: App, *, dry_run: bool = False) -> ArchiveResult:
    """Fold every subject due (terminal for `archive_after`) into its factory's archive."""
    snap = app.store.snapshot()
    now = app.clock.now()
    due = archival.due(app.config, snap, now)
    rows = []
    for factory, items in sorted(due.items()):
        if dry_run:
            rows.append(ArchiveRow(factory=factory, subjects=tuple(s.name for s, _ in items)))
            continue
        done = archiver.fold(app.store, factory, items, at=now)
        rows.append(
            ArchiveRow(
                factory=factory, subjects=done.subjects, commits=done.commits, moved=done.moved
            )
        )
    after = format_duration(archival.archive_after(app.config))
    # a pass writes a pack per batch of 500: git repacks once they pile up, as it does
    # after its own writes (freq.upkeep)
    folded = any(r.subjects for r in rows) and not dry_run
    failed = upkeep.gc_auto(app.store.root) if folded else None
    return ArchiveResult(dry_run=dry_run, after=after, factories=tuple(rows), upkeep=failed)
