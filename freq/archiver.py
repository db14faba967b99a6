"""Folding finished subjects into the archive: the archive pass of `run` and of `git freq
archive` (SPEC §3). Which subjects are due is freq.archival's (pure); this writes them, a
chunk of at most archival.CHUNK per archive commit and batch. A subject that moved since the
snapshot (requeued, moved by hand) makes its chunk's batch fail as a whole: the chunk is
read again and folded without it, so a pass never archives a state that is not the last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from freq import refs
from freq.archival import CHUNK
from freq.errors import RefConflict, UnknownSubject
from freq.runtime import Subject
from freq.store import Store


@dataclass(frozen=True, slots=True, kw_only=True)
class Folded:
    """What one pass folded of one factory: the subjects, and the archive commits."""

    factory: str
    subjects: tuple[str, ...]
    commits: tuple[str, ...]
    moved: tuple[str, ...] = ()  # due at the snapshot, moved since: left live


def fold(
    store: Store, factory: str, items: Sequence[tuple[Subject, str]], *, at: datetime
) -> Folded:
    """Fold `items` (subjects with the tips they were read at) into `factory`'s archive, a
    batch (one commit, one rewrite of packed-refs) per CHUNK subjects: a batch locks every
    ref it deletes, and each lock holds a file descriptor while it lasts. A subject that
    moved since is left out and its chunk tried again (at most three times)."""
    done: list[str] = []
    commits: list[str] = []
    moved: list[str] = []
    # by shard, so that a chunk touches few of the archive's trees (a pass of thousands)
    todo = sorted(items, key=lambda item: (refs.archive_shard(item[0].name), item[0].name))
    for i in range(0, len(todo), CHUNK):
        chunk = todo[i : i + CHUNK]
        for _ in range(3):
            if not chunk:
                break
            try:
                commits.append(store.fold(factory, chunk, at=at))
            except RefConflict:
                chunk, gone = _still(store, factory, chunk)
                moved += gone
                continue
            done += [s.name for s, _ in chunk]
            break
    return Folded(factory=factory, subjects=tuple(done), commits=tuple(commits), moved=tuple(moved))


def _still(
    store: Store, factory: str, chunk: list[tuple[Subject, str]]
) -> tuple[list[tuple[Subject, str]], list[str]]:
    """The chunk's subjects still at the tip they were read at, and the names of the rest
    (the archive ref itself may have moved too: another pass; the retry reads it again)."""
    keep: list[tuple[Subject, str]] = []
    gone: list[str] = []
    for subj, tip in chunk:
        try:
            _now, at = store.read_subject(factory, subj.name)
        except UnknownSubject:
            gone.append(subj.name)
            continue
        if at == tip:
            keep.append((subj, tip))
        else:
            gone.append(subj.name)
    return keep, gone
