"""Content-addressed caches of immutable documents, shared by every local process.

Imports only the standard library: no git. commit id → document (subject.json, lock.json,
control.json) as an append-only log under `.git/frequency/cache/`. Entries are immutable
facts (a commit id always has the same tree), so a concurrent writer, a torn line or a lost
compaction can only cause a miss, never a wrong answer. Each line: `<commit hex> <crc32
hex> <compact json>`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path


class DocCache:
    """commit id → one JSON document of that commit's tree."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[bytes, bytes] = {}
        self._offset = 0
        self._ino = -1
        self._lock = threading.Lock()

    def refresh(self) -> None:
        """Read what other processes appended since the last refresh."""
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return  # missing or unusable: a miss; state lives in git
        try:
            st = os.fstat(fd)
            if st.st_ino != self._ino or st.st_size < self._offset:
                self._entries.clear()
                self._offset = 0
                self._ino = st.st_ino
            if st.st_size == self._offset:
                return  # nothing appended (the common case: one fstat, no read)
            # one read of what was appended; a short one just leaves more for next time
            data = os.pread(fd, st.st_size - self._offset, self._offset)
        except OSError:
            return
        finally:
            os.close(fd)
        end = data.rfind(b"\n") + 1  # a torn last line is read again next time
        entries = self._entries
        crc32 = zlib.crc32
        # line by line out of the one buffer: a list of every line (and a copy of the
        # buffer) would hold the file three times over at once, 130 MB at 100,000 subjects
        at = 0
        while at < end:
            nl = data.index(b"\n", at)
            if nl - at >= 51 and data[at + 40] == 0x20:
                doc = data[at + 50 : nl]
                if b"%08x" % crc32(doc) == data[at + 41 : at + 49]:
                    entries[data[at : at + 40]] = doc
            at = nl + 1
        self._offset += end

    def get(self, oid: bytes) -> bytes | None:
        """The document of commit `oid`, if known."""
        return self._entries.get(oid)

    def add(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Append (commit id, JSON document) pairs in one write."""
        if not items:
            return
        lines = []
        with self._lock:
            for oid, raw in items:
                # a JSON object's lines joined make a valid one-line form of it
                enc = raw.replace(b"\n", b"")
                self._entries[oid] = enc
                lines.append(b"%s %08x %s\n" % (oid, zlib.crc32(enc), enc))
        try:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, b"".join(lines))
            finally:
                os.close(fd)
        except OSError:
            pass  # the cache is an optimisation; state lives in git

    def forget(self, oids: Sequence[bytes]) -> list[tuple[bytes, bytes]]:
        """Drop the entries of `oids` (commits git no longer has whole) and rewrite the log
        without them, so other processes miss them too; the entries dropped."""
        with self._lock:
            self._refresh()
            dropped = [(oid, self._entries.pop(oid)) for oid in oids if oid in self._entries]
            if dropped:
                self._rewrite(dict(self._entries))
            return dropped

    def compact(self, live: Callable[[], set[bytes]], n_live: int) -> None:
        """Rewrite the log with only the `live()` entries (`n_live` of them) when dead ones
        dominate it; `live` is called only then."""
        with self._lock:
            if len(self._entries) < 2 * n_live + 1000:
                return
            keep = live()
            self._rewrite({k: v for k, v in self._entries.items() if k in keep})

    def prune(self, live: set[bytes], *, dry_run: bool = False) -> int:
        """Rewrite the log with only the entries of `live`, whatever their share; how many
        entries were (with `dry_run`: would be) dropped."""
        with self._lock:
            self._refresh()
            dead = [k for k in self._entries if k not in live]
            if dead and not dry_run:
                self._rewrite({k: v for k, v in self._entries.items() if k in live})
            return len(dead)

    def _rewrite(self, keep: dict[bytes, bytes]) -> None:
        """Replace the log by `keep` (by rename: a reader sees the old file or the new one;
        an entry another process appended meanwhile is lost, which is only a miss)."""
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                for oid, enc in keep.items():
                    f.write(b"%s %08x %s\n" % (oid, zlib.crc32(enc), enc))
            os.replace(tmp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            return
        self._entries = keep
        self._ino = -1
        self._offset = 0
