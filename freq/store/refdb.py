"""Refs and loose objects written the way git writes them, with lock files that tell.

Imports only the standard library and the store's records and lock files; the bytes of an
object come from freq.store.git. Frequency writes its refs itself rather than through
dulwich's refs container, for three reasons measured under faults: every lock it takes
carries an flock, so a lock left by a killed worker is recognised at once
(freq.store.lockfiles); the objects a batch names are written only after every ref of the
batch is locked and checked, so a lost race writes nothing (no dangling commits) and an
object is unreferenced for microseconds, not for the whole claim (the window in which
`git gc --prune=now` could take it); and a loose object is written under a unique
temporary name and linked into place, as git does, so no lock file can block it.

The formats are git's (gitrepository-layout(5)): a loose ref is a file holding the object
id and a newline; packed-refs is sorted `<oid> <name>` lines, each optionally followed by
a `^<peeled oid>` line, under a `# pack-refs with: ...` header.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import queue
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence

from freq.errors import BatchIncomplete, RefConflict
from freq.store.lockfiles import PACKED_GRACE, Held, Lock, Locker, write_all
from freq.store.records import RefUpdate

_HEADER = b"# pack-refs with: peeled fully-peeled sorted \n"


def read_loose(common_dir: str, ref: str) -> str | None:
    """The value of loose ref `ref` (its file's first line), or None when it has none.

    Read with one os.read, not a buffered file: a ref is read on every claim and record,
    and open() adds four system calls (fstat, ioctl, lseek, a second read) to the three
    needed, each one a hand-over of the interpreter lock between the run loop's threads."""
    try:
        fd = os.open(os.path.join(common_dir, ref), os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        value = os.read(fd, 256).strip()
    except IsADirectoryError:
        return None
    finally:
        os.close(fd)
    return value.decode("ascii", "replace")


class Packed:
    """One version of packed-refs: its header line and its entries, in file order."""

    def __init__(self, header: bytes | None, entries: list[tuple[bytes, bytes, bytes | None]]):
        self.header = header
        self.entries = entries  # (name, oid, peeled or None)

    @classmethod
    def read(cls, common_dir: str) -> Packed:
        """packed-refs as it is now (empty when there is none)."""
        try:
            with open(os.path.join(common_dir, "packed-refs"), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return cls(None, [])
        header = None
        entries: list[tuple[bytes, bytes, bytes | None]] = []
        for line in data.splitlines(keepends=True):
            if line.startswith(b"#"):
                header = header or line
            elif line.startswith(b"^"):
                if entries:
                    name, oid, _ = entries[-1]
                    entries[-1] = (name, oid, line[1:].strip())
            elif line.strip():
                oid, _, name = line.strip().partition(b" ")
                entries.append((name, oid, None))
        return cls(header, entries)

    def names(self) -> set[bytes]:
        return {n for n, _, _ in self.entries}

    def render(self, changes: Mapping[bytes, bytes | None]) -> bytes:
        """This file with `changes` applied (name → new oid; None removes), sorted."""
        by_name = {n: (oid, peeled) for n, oid, peeled in self.entries}
        for name, oid in changes.items():
            if oid is None:
                by_name.pop(name, None)
            else:
                by_name[name] = (oid, None)
        if self.header is not None:
            out = [self.header]  # its traits still hold: new refs name commits, never tags
        elif self.entries:
            out = []  # a file without traits (old git): claim none of them
        else:
            out = [_HEADER]
        for name in sorted(by_name):
            oid, peeled = by_name[name]
            out.append(oid + b" " + name + b"\n")
            if peeled is not None:
                out.append(b"^" + peeled + b"\n")
        return b"".join(out)


def _current(common_dir: str, ref: str, packed: Callable[[str], str | None]) -> str | None:
    value = read_loose(common_dir, ref)
    if value is not None:
        return value
    return packed(ref)


def _write_packed(
    common_dir: str,
    locker: Locker,
    changes: Callable[[Packed], Mapping[bytes, bytes | None]],
    *,
    meanwhile: Callable[[], None] | None = None,
) -> None:
    """Rewrite packed-refs under git's packed-refs.lock with the changes `changes` returns
    for its current version (raising from it writes nothing; none: no rewrite).
    `meanwhile` runs under the lock before the rewrite is committed."""
    lock = locker.take(os.path.join(common_dir, "packed-refs"), grace=PACKED_GRACE)
    try:
        packed = Packed.read(common_dir)
        new = changes(packed)
        if meanwhile is not None:
            meanwhile()
        if new:
            lock.commit(packed.render(new))
    finally:
        lock.abort()


def apply(
    common_dir: str,
    batch: Sequence[RefUpdate],
    *,
    locker: Locker,
    write_objects: Callable[[Sequence[int]], None],
    packed: Callable[[str], str | None],
) -> None:
    """Move every ref of `batch` from its expected value to its new one, or none.

    Every ref is locked in name order (two batches never wait on each other in a cycle)
    and checked; RefConflict names the first that moved, and nothing is written. Then the
    new values are written into their lock files, `write_objects` writes what they name
    and makes it durable with those files (their descriptors are its argument), and the
    refs are renamed into place in the order given. A failure after some refs moved is
    BatchIncomplete, naming them. Held (from the locker) when a live writer holds one of
    the locks."""
    held: dict[str, Lock] = {}
    try:
        for u in sorted(batch, key=lambda u: u.ref):
            held[u.ref] = locker.take(os.path.join(common_dir, u.ref))
        # a ref with no loose file is looked up in packed-refs with `packed` (the Store's,
        # parsed again only when the file was replaced)
        for u in batch:
            if _current(common_dir, u.ref, packed) != u.expected:
                raise RefConflict(u.ref)
        # the new values go into their lock files first, so that write_objects makes them
        # durable together with the objects they name; no ref is renamed before both are
        lines = [held[u.ref] for u in batch if u.new is not None]
        for u in batch:
            if u.new is not None:
                held[u.ref].write(u.new.encode() + b"\n")
        write_objects([lock.fileno() for lock in lines])
        moved: list[str] = []
        i = 0
        while i < len(batch):
            # a run of deletions is one rewrite of packed-refs (an archive pass deletes
            # hundreds of subject refs), in the batch's order like every other ref
            j = i + 1
            while batch[i].new is None and j < len(batch) and batch[j].new is None:
                j += 1
            run = batch[i:j]
            try:
                if batch[i].new is None:
                    _delete(
                        common_dir, [u.ref for u in run], [held.pop(u.ref) for u in run], locker
                    )
                else:
                    held.pop(batch[i].ref).rename()
            except (OSError, Held) as exc:
                if not moved:
                    raise  # nothing moved yet: the caller reports it as such
                rest = [v.ref for v in batch[len(moved) :]]
                why = exc.strerror if isinstance(exc, OSError) else f"{exc.path} is held"
                raise BatchIncomplete(
                    f"{why or exc} while moving a ref batch: {', '.join(moved)} "
                    f"moved, {', '.join(rest)} did not (its order leaves that harmless: the "
                    "batch did not take effect)"
                ) from None
            moved += [u.ref for u in run]
            i = j
    finally:
        for lock in held.values():  # not written: give the lock files back
            lock.abort()


def _delete(common_dir: str, names: Sequence[str], locks: Sequence[Lock], locker: Locker) -> None:
    """Delete the refs `names` (locked by `locks`) as git does: under packed-refs.lock,
    unlink their loose files and drop them from packed-refs (one rewrite), so that a
    concurrent `git pack-refs` can neither pack an old value back nor be undone."""
    wanted = [n.encode() for n in names]

    def unlink_loose() -> None:
        for ref in names:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(common_dir, ref))

    def changes(packed: Packed) -> Mapping[bytes, bytes | None]:
        have = packed.names()
        return {n: None for n in wanted if n in have}

    try:
        _write_packed(common_dir, locker, changes, meanwhile=unlink_loose)
    finally:
        for lock in locks:
            lock.abort()


def add_packed(
    common_dir: str,
    new_refs: Mapping[bytes, bytes],
    *,
    locker: Locker,
    guard: str,
    clash: Callable[[list[str]], None],
    write_objects: Callable[[], None],
) -> None:
    """Create `new_refs` in packed-refs, all or none, under Frequency's creation lock
    `guard` (so the check and the write cannot interleave with another creator's): `clash`
    is called with the names of those that exist already (loose or packed) and raises;
    else `write_objects` writes what they name, and packed-refs is rewritten under its own
    lock (one rename), checked once more there."""
    creating = locker.take(guard)
    try:

        def clashes(packed: Packed) -> None:
            have = packed.names()
            taken = [
                r.decode()
                for r in new_refs
                if r in have or os.path.exists(os.path.join(common_dir, os.fsdecode(r)))
            ]
            if taken:
                clash(taken)

        # checked and written under the creation lock alone, so git's packed-refs.lock is
        # held only for the rewrite itself (git gives up on it after a second)
        clashes(Packed.read(common_dir))
        write_objects()

        def changes(packed: Packed) -> Mapping[bytes, bytes | None]:
            clashes(packed)  # again: a plain git process may have made one meanwhile
            return dict(new_refs)

        _write_packed(common_dir, locker, changes)
    finally:
        creating.abort()  # the creation lock holds no data: never renamed into place


def write_loose_objects(
    objects_dir: str, items: Sequence[tuple[str, bytes]], also: Sequence[int] = ()
) -> int:
    """Write loose objects (hex id, zlib-compressed bytes) as git does: each to a unique
    temporary file, made durable, then linked to its name; an object already there is only
    freshened (its mtime, which protects it from age-based pruning). `also`: files (the
    ref locks of the batch, their new values written) made durable with them. How many
    objects were written.

    The fsyncs run at once (sync_all), so the file system commits them together: on ext4
    every fsync of a new file is a journal commit that blocks the next file's creation
    until it ends, and four in a row cost four commits where four at once cost about one."""
    staged: list[tuple[int, str, str]] = []  # (fd, temporary path, final path)
    try:
        try:
            for hexsha, data in items:
                one = _stage_object(objects_dir, hexsha, data)
                if one is not None:
                    staged.append(one)
            sync_all([fd for fd, _, _ in staged] + list(also))
        finally:
            for fd, _, _ in staged:
                os.close(fd)
        return sum(_link_object(tmp, path) for _, tmp, path in staged)
    finally:
        for _, tmp, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)


def _stage_object(objects_dir: str, hexsha: str, data: bytes) -> tuple[int, str, str] | None:
    """The object's data in a new temporary file beside its name (fd still open), or None
    when the object is there already (freshened)."""
    folder = os.path.join(objects_dir, hexsha[:2])
    path = os.path.join(folder, hexsha[2:])
    try:
        os.utime(path)
        return None
    except FileNotFoundError:
        pass
    except PermissionError:
        return None  # someone else's object in a shared repository: it is there
    tmp = os.path.join(folder, _tmp_name())
    for tries in range(8):
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
            break
        except FileNotFoundError:  # a new folder, or one `git gc` removed when it emptied it
            if tries == 7:
                raise
            with contextlib.suppress(FileExistsError):
                os.makedirs(folder, exist_ok=True)
    try:
        write_all(fd, data)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return fd, tmp, path


# temporary object names: unique per process (its id and a random part, drawn again in a
# forked child) and per object (a counter), without a system call each
_TMP: list[tuple[str, Iterator[int]]] = []


def _name_temporaries() -> None:
    _TMP[:] = [(f"tmp_obj_freq_{os.getpid()}_{secrets.token_hex(4)}", itertools.count())]


_name_temporaries()
os.register_at_fork(after_in_child=_name_temporaries)


def _tmp_name() -> str:
    prefix, counter = _TMP[0]
    return f"{prefix}{next(counter):x}"


def _link_object(tmp: str, path: str) -> bool:
    """Give a durable temporary object file its name; False when another writer's
    identical object landed first."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except FileNotFoundError:
        raise  # its folder went (a concurrent git gc): the caller's retry writes it again
    except OSError:
        os.replace(tmp, path)  # a filesystem without hard links
    return True


class _Syncers:
    """Threads that fsync the files handed to them: one queue of (file, answer queue) in,
    each batch's own queue out. Both are C queues, so handing a file over costs no Python
    lock, Condition or Future: the run loop's threads wait on the interpreter lock for
    every one of those."""

    def __init__(self, threads: int) -> None:
        self.pid = os.getpid()
        self.jobs: queue.SimpleQueue[tuple[int, queue.SimpleQueue[Exception | None]]] = (
            queue.SimpleQueue()
        )
        for i in range(threads):
            threading.Thread(target=self._serve, name=f"freq-fsync-{i}", daemon=True).start()

    def _serve(self) -> None:
        jobs = self.jobs
        while True:
            fd, answer = jobs.get()
            try:
                os.fsync(fd)
            except Exception as exc:  # EIO, ENOSPC: the batch's caller raises it
                answer.put(exc)
            else:
                answer.put(None)


# the pool in a one-item list: a forked child, whose copy has no threads, makes its own
_SYNCERS: list[_Syncers] = []
_SYNCERS_LOCK = threading.Lock()


def sync_all(fds: Sequence[int]) -> None:
    """fsync every file of `fds` at once: all but the first on a small pool of threads, the
    first on this one; the first failure (EIO, ENOSPC) is raised once all have ended."""
    if len(fds) <= 1:
        for fd in fds:
            os.fsync(fd)
        return
    jobs = _syncers().jobs
    answers: queue.SimpleQueue[Exception | None] = queue.SimpleQueue()
    for fd in fds[1:]:
        jobs.put((fd, answers))
    first: Exception | None = None
    try:
        os.fsync(fds[0])
    except OSError as exc:
        first = exc
    for _ in fds[1:]:
        failed = answers.get()
        first = first or failed
    if first is not None:
        raise first


def _syncers() -> _Syncers:
    with _SYNCERS_LOCK:
        if not _SYNCERS or _SYNCERS[0].pid != os.getpid():
            _SYNCERS[:] = [_Syncers(4)]
        return _SYNCERS[0]
