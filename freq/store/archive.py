"""Reading the archive: finished subjects folded into refs/frequency/archive/<factory>.

Part of freq.store; imports no dulwich (objects are read through freq.store.git). The tree
of an archive commit (laid out in freq.store.git) has a count per state and one index per
shard, so a snapshot reads nothing of the archive but its refs, `status` reads one small
file per factory, and a lookup by name reads one shard's index: what a read costs does not
grow with how many subjects were archived. Everything read is kept by the archive commit
it came from, which never changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TypeVar

from freq import refs
from freq.runtime import Subject

# (archive commit, shard) → that shard's index: name → (subject's last commit, state)
Shard = dict[str, tuple[str, str]]
_KEEP = 4096  # of each kind read (counts, shard indexes, subjects), the most kept in memory
K = TypeVar("K")
V = TypeVar("V")


class ArchiveReader:
    """What one Store has read of its archives, shared by the snapshots it makes."""

    def __init__(
        self,
        *,
        counts: Callable[[str, str], dict[str, int]],
        shard: Callable[[str, str, str], Shard],
        subject: Callable[[str, str], Subject],
    ) -> None:
        self._read_counts = counts  # (archive commit, ref) → state → count
        self._read_shard = shard  # (archive commit, shard, ref) → index
        self._read_subject = subject  # (subject's last commit, ref) → Subject
        self._counts: dict[str, dict[str, int]] = {}
        self._shards: dict[tuple[str, str], Shard] = {}
        self._subjects: dict[str, Subject] = {}
        self._lock = threading.Lock()

    def view(self, tips: Mapping[str, str]) -> ArchiveView:
        """The archives at `tips` (factory → archive commit), as one snapshot sees them."""
        return ArchiveView(self, dict(tips))

    def _kept(self, memo: dict[K, V], key: K, read: Callable[[], V]) -> V:
        """`memo[key]`, read (outside the lock) and kept on a miss, the oldest let go."""
        with self._lock:
            found = memo.get(key)
        if found is None:
            found = read()
            with self._lock:
                if len(memo) >= _KEEP:
                    memo.pop(next(iter(memo)))
                memo[key] = found
        return found

    def counts(self, factory: str, tip: str) -> dict[str, int]:
        """Archived subjects per state in `factory`'s archive at `tip`."""
        return self._kept(
            self._counts, tip, lambda: self._read_counts(tip, refs.archive_ref(factory))
        )

    def entry(self, factory: str, tip: str, name: str) -> tuple[str, str] | None:
        """(subject's last commit, state) of `name` in the archive at `tip`, or None."""
        shard = refs.archive_shard(name)
        index = self._kept(
            self._shards,
            (tip, shard),
            lambda: self._read_shard(tip, shard, refs.archive_ref(factory)),
        )
        return index.get(name)

    def subject(self, factory: str, name: str, last: str) -> Subject:
        """The archived subject `name` as its last commit `last` holds it."""
        return self._kept(
            self._subjects, last, lambda: self._read_subject(last, refs.subject_ref(factory, name))
        )


class ArchiveView:
    """runtime.Archived for one snapshot: the archive commit of each factory it saw."""

    def __init__(self, reader: ArchiveReader, tips: dict[str, str]) -> None:
        self._reader = reader
        self.tips = MappingProxyType(tips)
        self._all: dict[tuple[str, str], int] | None = None

    def get(self, factory: str, name: str) -> tuple[Subject, str] | None:
        tip = self.tips.get(factory)
        if tip is None:
            return None
        found = self._reader.entry(factory, tip, name)
        if found is None:
            return None
        return self._reader.subject(factory, name, found[0]), found[0]

    def counts(self) -> Mapping[tuple[str, str], int]:
        if self._all is None:
            self._all = {
                (f, state): n
                for f, tip in self.tips.items()
                for state, n in self._reader.counts(f, tip).items()
            }
        return self._all
