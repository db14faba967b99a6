"""Git-compatible lock files that tell whether their writer is still alive.

Imports only the standard library. Git locks a file by creating `<name>.lock` with O_EXCL
and commits by renaming it over `<name>`; a process killed in between leaves the lock, and
nothing in git removes it (GIT-NOTES gap 2). Frequency's writers also hold an flock(2) on
each lock file they own, and the kernel drops it when the process dies, so a leftover
lock is recognised at once, not after minutes: nobody holds its flock, and it is older
than a grace period long enough for a plain git process (which takes no flock) to finish
its write. Such a lock is removed under one sweep lock per repository, after checking
that the path still names the very file that was judged, so two sweepers can never remove
a lock that a live writer has just taken.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

REF_GRACE = 1.0  # seconds: git holds a ref's lock for a few milliseconds
PACKED_GRACE = 10.0  # git pack-refs holds packed-refs.lock while it writes the whole file
OBJECT_GRACE = 60.0  # object locks and temporary files (their writers fsync first)


class Held(Exception):
    """The lock file exists and its writer may be alive (internal: the store retries)."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class Lock:
    """A lock file this process owns: commit it (rename over the target) or abort it."""

    def __init__(self, path: str, target: str, fd: int) -> None:
        self.path = path
        self.target = target
        self._fd: int | None = fd

    def commit(self, data: bytes, *, fsync: bool = True) -> None:
        """Write `data` and rename the lock over its target (git's commit of a lock)."""
        self.write(data)
        if fsync:
            try:
                os.fsync(self.fileno())
            except BaseException:
                self.abort()
                raise
        self.rename()

    def fileno(self) -> int:
        assert self._fd is not None, "lock already given back"
        return self._fd

    def write(self, data: bytes) -> None:
        """Write `data` into the lock file (made durable by the caller before `rename`)."""
        try:
            write_all(self.fileno(), data)
        except BaseException:
            self.abort()
            raise

    def rename(self) -> None:
        """Rename the lock over its target: what was written becomes its value."""
        fd = self.fileno()
        try:
            os.rename(self.path, self.target)
        except BaseException:
            self.abort()
            raise
        self._fd = None
        os.close(fd)

    def abort(self) -> None:
        """Give the lock back without changing the target (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                    os.unlink(self.path)
        finally:
            os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` (os.write may write less)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


@dataclass(frozen=True, slots=True)
class Locker:
    """Takes and sweeps lock files for one repository.

    `guard` is the sweep lock's path (a file never removed), `now` the current time in
    seconds since the epoch (the injected clock: file ages are judged against it)."""

    guard: str
    now: Callable[[], float]

    def take(self, target: str, *, grace: float = REF_GRACE) -> Lock:
        """Lock `target`: create `target.lock` (its folder too), or clear a leftover lock
        whose writer is gone and create it then. Held when a live writer has it;
        OSError (ENOSPC...) when the file cannot be created."""
        path = target + ".lock"
        for _ in range(4):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                if not self.clear_if_stale(path, grace=grace):
                    raise Held(path) from None
                continue
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):  # a folder git gc just removed
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # a sweeper judging it lets go at once
            except BaseException:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(path)
                raise
            return Lock(path, target, fd)
        raise Held(path)

    def clear_if_stale(self, path: str, *, grace: float, remove: bool = True) -> bool:
        """Remove lock file `path` if its writer is gone (no flock on it, older than
        `grace`); True when the path is free now (`remove=False`: only judge it)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return True
        except OSError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # its writer holds it: alive
            judged = os.fstat(fd)
            if self.now() - judged.st_mtime < grace:
                return False  # maybe a plain git process in the middle of its write
            if not remove:
                return True
            with self._sweeping() as ok:
                if not ok:
                    return False
                try:
                    if not os.path.samestat(judged, os.stat(path)):
                        return False  # replaced by a new writer's lock meanwhile
                    os.unlink(path)
                except FileNotFoundError:
                    pass
                except OSError:
                    return False  # not ours to remove (another user's, a read-only disk)
            return True
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _sweeping(self) -> Iterator[bool]:
        """Hold the sweep lock (True), or yield False when another sweeper has it."""
        try:
            try:
                fd = os.open(self.guard, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(self.guard), exist_ok=True)
                fd = os.open(self.guard, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:  # a read-only disk, permissions: nothing can be swept from here
            yield False
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)

    def sweep(
        self, folder: str, *, match: Callable[[str], bool], grace: float, remove: bool = True
    ) -> list[str]:
        """Remove every stale file below `folder` whose name `match`es (lock files, or
        temporary object files left by killed writers); the paths removed (`remove=False`:
        the paths that would be)."""
        removed: list[str] = []
        for root, _dirs, files in os.walk(folder):
            for name in files:
                if match(name):
                    path = os.path.join(root, name)
                    if os.path.exists(path) and self.clear_if_stale(
                        path, grace=grace, remove=remove
                    ):
                        removed.append(path)
        return removed


def no_space(exc: OSError) -> bool:
    """Whether `exc` means the disk (or the user's quota) is full."""
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)
