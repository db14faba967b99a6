"""Which finished subjects the archive takes now (SPEC §3 `refs/frequency/archive/`).

Pure: a Config, a Snapshot and the time in, the subjects due out. A subject is due when it
has sat in one of its factory's terminal states for `archive_after` (frequency.yaml,
default 1 day; 0: at once) with nothing left to do on it: no claim, no landing queued, and
every subject its last step emitted created already. Subjects of factories no longer
configured stay where they are: nothing says which of their states is terminal.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from freq.model import Config
from freq.runtime import Snapshot, Subject

DEFAULT_AFTER = timedelta(days=1)
# subjects folded by one archive commit (its parents) and one batch, at the most: the
# batch holds a lock, and a file descriptor, on each ref it deletes
CHUNK = 500


def archive_after(config: Config) -> timedelta:
    """How long a subject stays terminal before it is archived."""
    after = config.settings.archive_after
    return DEFAULT_AFTER if after is None else after


def due(
    config: Config, snap: Snapshot, now: datetime, factories: tuple[str, ...] | None = None
) -> dict[str, list[tuple[Subject, str]]]:
    """Per factory, the subjects due (with the tip each was read at), oldest first."""
    after = archive_after(config)
    terminal = {
        f.factory_id: frozenset(f.terminal)
        for f in config.factories
        if factories is None or f.factory_id in factories
    }
    out: dict[str, list[tuple[Subject, str]]] = {}
    for key, subj in snap.subjects.items():
        ends = terminal.get(key[0])
        if ends is None or subj.state not in ends:
            continue
        if subj.claim is not None or subj.landing is not None:
            continue
        if now - subj.entered_at < after:
            continue
        if subj.emitted and any(snap.find(e.factory, e.name) is None for e in subj.emitted):
            continue  # what it emitted is created by the next plan first
        out.setdefault(key[0], []).append((subj, snap.tips[key]))
    for items in out.values():
        items.sort(key=lambda item: (item[0].entered_at, item[0].name))
    return out
