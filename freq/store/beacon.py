"""The beacon: how local processes tell each other that refs/frequency changed.

Imports only the standard library: no git. Every store write appends this handle's 8-byte
mark to `.git/frequency/beacon`; a waiting worker compares a token of the beacon and of
packed-refs (which covers bulk writes and `git pack-refs`) instead of re-reading state, and
can tell its own writes from everyone else's.
"""

from __future__ import annotations

import os
from pathlib import Path


class Beacon:
    """One handle's view of the beacon file."""

    def __init__(self, path: Path, packed_refs: Path) -> None:
        self.path = path
        self.packed_refs = packed_refs
        self.mark = os.urandom(4).hex().encode()

    def ring(self) -> None:
        """Say that refs/frequency changed. Called after a ref moved: the beacon is an
        optimisation (watchers also poll), so a failure here never fails the write."""
        try:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except FileNotFoundError:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, self.mark)
                if os.fstat(fd).st_size > 8192:
                    os.ftruncate(fd, 0)
            finally:
                os.close(fd)
        except OSError:
            pass

    def token(self) -> tuple[int, ...]:
        """A value that changes whenever a local writer moved a ref under refs/frequency."""
        out: list[int] = []
        for path in (self.path, self.packed_refs):
            try:
                st = os.stat(path)
                out += [st.st_mtime_ns, st.st_size, st.st_ino]
            except OSError:
                out += [0, 0, 0]
        return tuple(out)

    def others_wrote(self, token: tuple[int, ...]) -> bool:
        """Whether another process moved a ref since `token` was taken."""
        now = self.token()
        if now == token:
            return False
        if now[3:] != token[3:] or now[2] != token[2] or now[1] < token[1]:
            return True  # packed-refs changed, or the beacon was replaced or truncated
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                added = os.pread(fd, now[1] - token[1], token[1])
            finally:
                os.close(fd)
        except OSError:
            return True
        mark = self.mark
        return any(added[i : i + 8] != mark for i in range(0, len(added), 8))
