"""The state store: the only module that reads or writes git objects and refs (via dulwich).

Must not import click, subprocess or any freq module above it (see STYLE.md layers).

Every ref update is a compare-and-swap against the value that was read: `advance` moves
one ref with dulwich `set_if_equals`/`add_if_new`; `update` moves several refs as one batch
(each with its expected old value, all or none: every ref locked in name order, checked,
then written in the order given, so a crash can only leave a prefix of the batch and the
order says which prefix is harmless); `create_many` creates many subject refs at once in
packed-refs (dulwich `add_packed_refs`) under a creation lock (all or nothing). A lost race
raises RefConflict; callers re-read and re-plan. Only dulwich's public API is used. Commits
are built from blobs and trees in the object store, never through the user's HEAD, index,
branches or working tree.

Reading the whole state is `snapshot()`. Its cost is dominated by reading each tip's
subject.json; a content-addressed cache (`.git/frequency/cache/subjects.v1`, keyed by tip
commit id, append-only, written through by every writer) makes a re-read cost one
file read plus a ref listing, however many subjects there are (GIT-NOTES.md).

Above STYLE's ~500 lines on purpose: it is the one funnel to dulwich (STYLE habit 3); the
subject cache could move out, but the lock-retry and fsync rules belong with the writes.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from dulwich.errors import MissingCommitError, NotGitRepository
from dulwich.file import FileLocked, GitFile
from dulwich.objects import Blob, Commit, Tree
from dulwich.pack import write_pack
from dulwich.refs import locked_ref
from dulwich.repo import Repo
from dulwich.walk import WalkEntry

from freq import refs
from freq.clock import Clock, Random, system_rng
from freq.errors import (
    CorruptState,
    DiskFull,
    GitLockHeld,
    Hint,
    NotARepository,
    RefConflict,
    StateDirUnusable,
    SubjectExists,
    UnknownSubject,
)
from freq.model import Event, Snapshot, Subject

_HEX = frozenset(b"0123456789abcdef")
_LOCK_RETRIES = 60
T = TypeVar("T")
_STALE_LOCK_SECONDS = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    """One commit of a Frequency ref, as `log` shows it."""

    oid: str
    ref: str
    at: datetime
    message: str
    renewal: bool = False  # a lease renewal (Freq-Event: renewed); readers fold these

    @property
    def trailers(self) -> dict[str, str]:
        """The commit's trailers (Freq-*)."""
        return refs.parse_trailers(self.message)


@dataclass(frozen=True, slots=True)
class RefUpdate:
    """One ref of a batch: move `ref` from `expected` (None: it must not exist) to `new`
    (None: delete it)."""

    ref: str
    new: str | None
    expected: str | None


class _SubjectCache:
    """tip commit id → subject.json, an append-only log shared by every local process.

    Entries are immutable facts (a commit id always has the same tree), so a concurrent
    writer, a torn line or a lost compaction can only cause a cache miss, never a wrong
    answer. Each line: `<commit hex> <crc32 hex> <compact json>`.
    """

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
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_ino != self._ino or st.st_size < self._offset:
                    self._entries.clear()
                    self._offset = 0
                    self._ino = st.st_ino
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return  # missing or unusable: a miss; state lives in git
        end = data.rfind(b"\n") + 1  # a torn last line is read again next time
        entries = self._entries
        for line in data[:end].split(b"\n"):
            if len(line) < 51 or line[40:41] != b" ":
                continue
            oid, crc, doc = line[:40], line[41:49], line[50:]
            if f"{zlib.crc32(doc):08x}".encode() == crc:
                entries[oid] = doc
        self._offset += end

    def get(self, oid: bytes) -> bytes | None:
        return self._entries.get(oid)

    def add(self, items: Sequence[tuple[bytes, bytes]]) -> None:
        """Append (commit id, subject.json) pairs in one write."""
        if not items:
            return
        lines = []
        with self._lock:
            for oid, raw in items:
                # subject.json is one JSON object; its lines joined make a valid one-line form
                enc = raw.replace(b"\n", b"")
                self._entries[oid] = enc
                lines.append(b"%s %08x %s\n" % (oid, zlib.crc32(enc), enc))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, b"".join(lines))
            finally:
                os.close(fd)
        except OSError:
            pass  # the cache is an optimisation; state lives in git

    def compact(self, live: set[bytes]) -> None:
        """Rewrite the log with only live entries when dead ones dominate it."""
        with self._lock:
            self._compact(live)

    def _compact(self, live: set[bytes]) -> None:
        if len(self._entries) < 2 * len(live) + 1000:
            return
        keep = {k: v for k, v in self._entries.items() if k in live}
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


class Store:
    """A handle on one repository's refs/frequency/* state."""

    def __init__(self, repo: Repo, *, clock: Clock, rng: Random | None = None) -> None:
        self.repo = repo
        self.clock = clock
        self._rng = rng or system_rng()
        # GIT-NOTES gap 8: loose objects must reach the disk before a ref names them.
        self.repo.object_store.fsync_object_files = True
        self.root = Path(repo.path)
        self.common_dir = Path(repo.commondir())
        self.state_dir = self.common_dir / "frequency"
        self._cache = _SubjectCache(self.state_dir / "cache" / "subjects.v1")
        # dulwich's refs container caches packed-refs without a lock of its own: every call
        # into it (reads included) goes through this one, or threads corrupt the cache
        self._write_lock = threading.RLock()
        self._beacon = self.state_dir / "beacon"
        self._mark = os.urandom(4).hex().encode()  # this handle's writes, in the beacon
        self._docs: dict[tuple[str, str], bytes] = {}
        self._parsed: dict[bytes, Subject] = {}  # tip commit id -> Subject (immutable)
        self.identity = f"Frequency <freq@{socket.gethostname()}>".encode()
        self._state_ok = False

    def require_state_dir(self) -> None:
        """StateDirUnusable unless .git/frequency/ is (or can be made) a folder this process
        can read and write. Every write checks it before any object or ref is written, so a
        broken folder is one line up front, never a failure after a ref moved."""
        if self._state_ok:
            return
        d = self.state_dir
        try:
            shown = str(d.relative_to(self.root))
        except ValueError:
            shown = str(d)
        hint = f"move it aside (`mv {shown} {shown}.old`) and retry"
        if d.exists() and not d.is_dir():
            raise StateDirUnusable(
                f"{shown} is not a folder (Frequency keeps its logs and locks there); "
                "nothing was written",
                hint=hint,
            )
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateDirUnusable(
                f"cannot create {shown}: {exc.strerror}; nothing was written"
            ) from None
        if not os.access(d, os.R_OK | os.W_OK | os.X_OK):
            raise StateDirUnusable(
                f"{shown} is not readable and writable by this user; nothing was written",
                hint=f"fix its permissions (`chmod u+rwx {shown}`) and retry",
            )
        self._state_ok = True

    # ------------------------------------------------------------ opening

    @classmethod
    def discover(cls, start: str | os.PathLike[str], *, clock: Clock) -> Store:
        """Open the repository containing `start`; NotARepository when there is none."""
        try:
            repo = Repo.discover(str(start))
        except NotGitRepository:
            raise NotARepository(
                f"not a git repository: {os.fspath(start)}",
                hint=Hint(text="run `git init` first, or cd into a repository"),
            ) from None
        if repo.bare:
            repo.close()
            raise NotARepository(f"{os.fspath(start)} is a bare repository; run in a clone")
        return cls(repo, clock=clock)

    def close(self) -> None:
        """Release file handles."""
        self.repo.close()

    # ------------------------------------------------------------ refs

    def list_refs(self, prefix: str) -> dict[str, str]:
        """Every ref under `prefix` (ending in /) → commit id, loose refs over packed ones."""
        out: dict[str, str] = {}
        pref = prefix.encode()
        # packed-refs read directly: dulwich checks every name's format (60 ms for 10,000
        # subjects, the bulk of `git freq plan`'s ref listing); writers replace the file by
        # rename under packed-refs.lock, so one read sees one version of it
        try:
            with open(os.path.join(self.common_dir, "packed-refs"), "rb") as f:
                packed = f.read()
        except FileNotFoundError:
            packed = b""
        for line in packed.splitlines():
            oid, _, name = line.partition(b" ")
            if name.startswith(pref) and not oid.startswith((b"#", b"^")):
                out[name.decode()] = oid.decode()
        self._scan_loose(os.path.join(self.common_dir, prefix), prefix, out)
        return out

    def _scan_loose(self, folder: str, name: str, out: dict[str, str]) -> None:
        """Read loose ref files below `folder` (scandir: no stat of files, no path joins)."""
        try:
            it = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return
        with it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    self._scan_loose(entry.path, f"{name}{entry.name}/", out)
                elif not entry.name.endswith(".lock"):
                    try:
                        with open(entry.path, "rb") as f:
                            value = f.read(128).strip()
                    except (FileNotFoundError, IsADirectoryError):
                        continue
                    out[name + entry.name] = value.decode("ascii", "replace")

    def read_ref(self, ref: str) -> str | None:
        """The commit id a ref points at, or None."""
        try:
            with self._write_lock:
                return self.repo.refs[ref.encode()].decode()  # type: ignore[no-any-return]
        except KeyError:
            return None

    def _retry_locked(self, what: str, fn):  # type: ignore[no-untyped-def]
        """Run a ref update, retrying git lock contention with jittered backoff (gap 2, 3)."""
        delay = 0.001
        for _ in range(_LOCK_RETRIES):
            try:
                return fn()
            except FileLocked as exc:
                lockfile = os.fsdecode(exc.lockfilename)
                self._clear_if_stale(lockfile)
                last = lockfile
            except FileNotFoundError:
                last = what  # a sibling's removal raced our folder creation
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise DiskFull(f"disk full while writing {what}; nothing was changed") from None
                raise
            self.clock.sleep(delay * (0.5 + self._rng.random()))
            delay = min(delay * 2, 0.05)
        raise GitLockHeld(
            f"git lock {last} is held by another process",
            hint="retry; if no git process is running, remove the stale .lock file",
        )

    def _clear_if_stale(self, lockfile: str) -> None:
        """Remove a *.lock under refs/frequency (or Frequency's creation lock) left by a killed
        process (gap 2)."""
        path = os.path.abspath(lockfile)
        ours = (str(self.common_dir / "refs" / "frequency"), str(self.state_dir / "create.lock"))
        if not path.startswith(ours):
            return
        try:
            age = self.clock.now().timestamp() - os.stat(lockfile).st_mtime
        except OSError:
            return
        if age > _STALE_LOCK_SECONDS:
            with contextlib.suppress(OSError):
                os.unlink(lockfile)

    # ------------------------------------------------------------ objects

    def _make_commit(self, at: datetime, message: str, tree: bytes, parent: str | None) -> Commit:
        c = Commit()
        c.tree = tree
        c.parents = [parent.encode()] if parent else []
        c.author = c.committer = self.identity
        ts = int(at.timestamp())
        c.author_time = c.commit_time = ts
        c.author_timezone = c.commit_timezone = 0
        c.encoding = b"UTF-8"
        c.message = message.encode()
        return c

    def _tree(
        self, subject_json: bytes, output: bytes | None, parent: str | None
    ) -> tuple[Tree, list[Blob]]:
        blob = Blob.from_string(subject_json)
        tree = Tree()
        tree.add(refs.SUBJECT_FILE.encode(), 0o100644, blob.id)
        new = [blob]
        if output is not None:
            out_blob = Blob.from_string(output)
            tree.add(refs.OUTPUT_FILE.encode(), 0o100644, out_blob.id)
            new.append(out_blob)
        elif parent is not None:
            old_tree = self.repo.object_store[self.repo.object_store[parent.encode()].tree]
            with contextlib.suppress(KeyError):
                mode, sha = old_tree[refs.OUTPUT_FILE.encode()]
                tree.add(refs.OUTPUT_FILE.encode(), mode, sha)
        return tree, new

    def _add_objects(self, objs: Sequence[Blob | Tree | Commit]) -> None:
        self.require_state_dir()
        store = self.repo.object_store
        try:
            if len(objs) > 64:
                self._write_pack(objs)
            else:
                for o in objs:
                    # another process writing the identical object holds its lock: same bytes,
                    # so waiting for it (or finding the object there) is all that is needed
                    self._retry_locked(o.id.decode(), lambda o=o: store.add_object(o))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull("disk full while writing objects; no ref was moved") from None
            raise

    def _write_pack(self, objs: Sequence[Blob | Tree | Commit]) -> None:
        """Write many objects as one pack. dulwich's add_objects re-reads the pack it just
        wrote to index it (about 3x the cost); write_pack builds the index while writing."""
        store = self.repo.object_store
        pack_dir = os.path.join(store.path, "pack")
        os.makedirs(pack_dir, exist_ok=True)
        tmp = os.path.join(pack_dir, f"tmp-freq-{os.getpid()}-{self._rng.getrandbits(32):08x}")
        data_sum, _idx = write_pack(
            tmp, [(o, None) for o in objs], store.object_format, deltify=False
        )
        final = os.path.join(pack_dir, f"pack-{data_sum.hex()}")
        os.replace(tmp + ".pack", final + ".pack")  # the pack before its index: git looks
        os.replace(tmp + ".idx", final + ".idx")  # for packs by their .idx
        # readers find the new pack by themselves: a lookup that misses rescans pack/

    # ------------------------------------------------------------ writes

    def _swap(self, ref: str, new: bytes, expected: str | None) -> None:
        """Move `ref` to `new` only if it is at `expected` (None: only if absent)."""
        self.require_state_dir()
        name = ref.encode()

        def update() -> bool:
            if expected is None:
                return bool(self.repo.refs.add_if_new(name, new))
            return bool(self.repo.refs.set_if_equals(name, expected.encode(), new))

        with self._write_lock:
            ok = self._retry_locked(ref, update)
        if not ok:
            raise RefConflict(ref)
        self._ring()

    def _ring(self) -> None:
        """Tell local watchers that refs/frequency changed (see `change_token`).

        Called after a ref moved: the beacon is an optimisation (watchers also poll), so a
        failure here must never turn a write that happened into a reported failure."""
        try:
            try:
                fd = os.open(self._beacon, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            except FileNotFoundError:
                self._beacon.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self._beacon, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, self._mark)
                if os.fstat(fd).st_size > 8192:
                    os.ftruncate(fd, 0)
            finally:
                os.close(fd)
        except OSError:
            pass

    def change_token(self) -> tuple[int, ...]:
        """A value that changes whenever a local writer moved a ref under refs/frequency.

        Every store write appends to `.git/frequency/beacon`; packed-refs covers bulk
        writes and `git pack-refs`. Watchers compare tokens instead of re-reading state.
        """
        out: list[int] = []
        for path in (self._beacon, self.common_dir / "packed-refs"):
            try:
                st = os.stat(path)
                out += [st.st_mtime_ns, st.st_size, st.st_ino]
            except OSError:
                out += [0, 0, 0]
        return tuple(out)

    def others_wrote(self, token: tuple[int, ...]) -> bool:
        """Whether another process moved a ref since `token` (from change_token) was taken.

        Each write appends this process's 8-byte mark to the beacon, so a watcher can tell
        its own writes (which it already knows about) from everyone else's and not wake
        itself up after every commit it makes.
        """
        now = self.change_token()
        if now == token:
            return False
        if now[3:] != token[3:] or now[2] != token[2] or now[1] < token[1]:
            return True  # packed-refs changed, or the beacon was replaced or truncated
        try:
            with open(self._beacon, "rb") as f:
                f.seek(token[1])
                added = f.read(now[1] - token[1])
        except OSError:
            return True
        mark = self._mark
        return any(added[i : i + 8] != mark for i in range(0, len(added), 8))

    def advance(
        self,
        ref: str,
        subject: Subject,
        event: Event,
        *,
        expected: str | None,
        output: bytes | None = None,
    ) -> str:
        """Commit `subject` + `event` on top of `expected` and move `ref` only if it is there.

        `expected=None` creates the ref and fails if it exists. `output` replaces the output
        tail kept in the tree; None keeps the previous one. Raises RefConflict on a lost race.
        """
        oid = self.prepare(subject, event, parent=expected, output=output)
        self.swap(ref, oid, expected=expected)
        return oid

    def prepare(
        self, subject: Subject, event: Event, *, parent: str | None, output: bytes | None = None
    ) -> str:
        """Write the commit `advance` would write, without moving any ref; its id.

        A claim is prepared first so that cap slots can point at it before the subject ref
        does (see locks.Caps)."""
        raw = refs.subject_to_json(subject)
        tree, blobs = self._tree(raw, output, parent)
        commit = self._make_commit(event.at, refs.format_message(event), tree.id, parent)
        self._add_objects([*blobs, tree, commit])
        self._cache.add([(commit.id, raw)])
        self._parsed[commit.id] = subject
        return str(commit.id.decode())

    def swap(self, ref: str, oid: str, *, expected: str | None) -> None:
        """Move `ref` to the existing commit `oid` if it is at `expected` (None: absent)."""
        self._swap(ref, oid.encode(), expected)

    def update(self, batch: Sequence[RefUpdate]) -> None:
        """Move every ref of `batch` from its expected value to its new one, or none of them.

        Every ref is locked (in name order, so two batches never wait on each other in a
        cycle) and checked before any is written; RefConflict names the first ref that
        moved. The refs are then written in the order given: put the ref that makes the
        batch take effect (a claim's subject ref) last.
        """
        if not batch:
            return
        self.require_state_dir()
        names = [u.ref for u in batch]
        if len(set(names)) != len(names):
            raise ValueError(f"a batch names a ref twice: {names}")

        def apply() -> None:
            held: dict[str, locked_ref] = {}
            try:
                for u in sorted(batch, key=lambda u: u.ref):
                    lock = locked_ref(self.repo.refs, u.ref.encode())
                    lock.__enter__()
                    held[u.ref] = lock
                for u in batch:
                    want = u.expected.encode() if u.expected is not None else None
                    if held[u.ref].get() != want:
                        raise RefConflict(u.ref)
                for u in batch:
                    lock = held.pop(u.ref)
                    if u.new is None:
                        lock.delete()
                    else:
                        lock.set(u.new.encode())
                    lock.__exit__(None, None, None)  # commits this ref: the rename
            finally:
                for lock in held.values():  # not written: give the lock files back
                    lock.__exit__(RefConflict, None, None)

        with self._write_lock:
            self._retry_locked(names[-1], apply)
        self._ring()

    def delete(self, ref: str, *, expected: str) -> bool:
        """Delete `ref` if it still points at `expected`; False when it moved meanwhile."""
        self.require_state_dir()
        name = ref.encode()
        with self._write_lock:
            ok = self._retry_locked(
                ref, lambda: self.repo.refs.remove_if_equals(name, expected.encode())
            )
        if ok:
            self._ring()
        return bool(ok)

    def subject_at(self, oid: str, ref: str) -> Subject:
        """The subject.json of commit `oid` (cached by commit id)."""
        key = oid.encode()
        hit = self._parsed.get(key)
        if hit is not None:
            return hit
        cached = self._cache.get(key)
        if cached is not None:
            subj = refs.subject_from_doc(json.loads(cached), where=ref)
        else:
            raw = self._subject_at(oid, ref)
            subj = refs.subject_from_json(raw, where=ref)
            self._cache.add([(key, raw)])
        self._parsed[key] = subj
        return subj

    def write_doc(
        self,
        ref: str,
        files: dict[str, bytes],
        message: str,
        *,
        at: datetime,
        expected: str | None,
    ) -> str:
        """Commit a tree of `files` with `message` on top of `expected`; CAS-move `ref`.

        The generic write for locks, caps and control refs. RefConflict on a lost race.
        """
        oid = self.prepare_doc(files, message, at=at, parent=expected)
        self._swap(ref, oid.encode(), expected)
        return oid

    def prepare_doc(
        self, files: dict[str, bytes], message: str, *, at: datetime, parent: str | None
    ) -> str:
        """Write the commit `write_doc` would write, without moving any ref; its id (for a
        batch of ref updates, see `update`)."""
        tree = Tree()
        blobs = []
        for name, data in sorted(files.items()):
            blob = Blob.from_string(data)
            tree.add(name.encode(), 0o100644, blob.id)
            blobs.append(blob)
        commit = self._make_commit(at, message, tree.id, parent)
        self._add_objects([*blobs, tree, commit])
        oid = str(commit.id.decode())
        for name, data in files.items():
            self._docs[(oid, name)] = data
        return oid

    def read_doc(self, ref: str, name: str) -> tuple[bytes, str] | None:
        """(content of file `name` at the tip of `ref`, tip), or None when the ref is absent."""
        oid = self.read_ref(ref)
        if oid is None:
            return None
        return self.doc_at(oid, name, ref), oid

    def doc_at(self, oid: str, name: str, ref: str) -> bytes:
        """File `name` in commit `oid`'s tree (memoised: commits are immutable)."""
        key = (oid, name)
        hit = self._docs.get(key)
        if hit is not None:
            return hit
        commit = self.commit_at(oid, ref)
        store = self.repo.object_store
        try:
            _mode, sha = store[commit.tree][name.encode()]
            data = bytes(store[sha].data)
        except KeyError:
            raise CorruptState(f"{ref}: commit {oid[:12]} has no {name}") from None
        if len(self._docs) > 4096:
            self._docs.clear()
        self._docs[key] = data
        return data

    def create_many(self, items: Sequence[tuple[Subject, Event]]) -> list[str]:
        """Create many subject refs in one packed-refs write: all of them or none.

        Raises SubjectExists (naming them) when any already exists; nothing is written then.
        """
        if not items:
            return []
        objs: list[Blob | Tree | Commit] = []
        new_refs: dict[bytes, bytes] = {}
        cache_items = []
        for subject, event in items:
            raw = refs.subject_to_json(subject)
            tree, blobs = self._tree(raw, None, None)
            commit = self._make_commit(event.at, refs.format_message(event), tree.id, None)
            objs += [*blobs, tree, commit]
            name = refs.subject_ref(subject.factory, subject.name).encode()
            if name in new_refs:
                raise SubjectExists(f"subject {subject.factory}/{subject.name} is named twice")
            new_refs[name] = commit.id
            cache_items.append((commit.id, raw))
        self._add_objects(objs)
        with self._write_lock:
            self._retry_locked("packed-refs", lambda: self._pack_new_refs(new_refs))
        self._ring()
        self._cache.add(cache_items)
        return [oid.decode() for oid in new_refs.values()]

    def _pack_new_refs(self, new_refs: dict[bytes, bytes]) -> None:
        """Add `new_refs` to packed-refs if none of them exists, else SubjectExists.

        Every creation of a subject ref goes through here, under one creation lock, so the
        check and the write cannot interleave with another creator's; dulwich's
        `add_packed_refs` then rewrites packed-refs under git's own lock (one rename)."""
        container = self.repo.refs
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with GitFile(self.state_dir / "create", "wb") as guard:
            try:
                packed = container.get_packed_refs()
                clash = [
                    r.decode()
                    for r in new_refs
                    if r in packed or os.path.exists(container.refpath(r))
                ]
                if clash:
                    names = ", ".join(sorted("/".join(c.split("/")[-2:]) for c in clash)[:5])
                    more = f" and {len(clash) - 5} more" if len(clash) > 5 else ""
                    raise SubjectExists(
                        f"subject already exists: {names}{more}",
                        hint=Hint(
                            text="nothing was added; leave those out, or pass",
                            option="skip_existing",
                        ),
                    )
                container.add_packed_refs(new_refs)
            finally:
                guard.abort()  # the creation lock holds no data: never renamed into place

    # ------------------------------------------------------------ reads

    def _subject_at(self, oid: str, ref: str) -> bytes:
        """subject.json of commit `oid`; CorruptState when the commit is not ours."""
        commit = self.commit_at(oid, ref)
        store = self.repo.object_store
        try:
            tree = store[commit.tree]
            _mode, sha = tree[refs.SUBJECT_FILE.encode()]
            return bytes(store[sha].data)
        except KeyError:
            raise CorruptState(f"{ref}: commit {oid[:12]} has no subject.json") from None

    def commit_at(self, oid: str, ref: str) -> Commit:
        """The commit `ref` points at; CorruptState when that object is missing or is not a
        commit (a hand-made or half-fetched ref)."""
        try:
            obj = self.repo.object_store[oid.encode()]
        except (KeyError, ValueError):
            raise CorruptState(
                f"{ref}: points at {oid[:12]}, which is not in this repository"
            ) from None
        if not isinstance(obj, Commit):
            raise CorruptState(f"{ref}: points at a {obj.type_name.decode()}, not a commit")
        return obj

    def readable_tips(self, tips: dict[str, str]) -> tuple[dict[str, str], list[str]]:
        """(the tips that name a commit, a problem line for each one that does not)."""
        good: dict[str, str] = {}
        problems: list[str] = []
        for ref, oid in tips.items():
            try:
                self.commit_at(oid, ref)
            except CorruptState as exc:
                problems.append(f"{exc.message}; ignored")
                continue
            good[ref] = oid
        return good, problems

    def snapshot(self) -> Snapshot:
        """Every subject of every factory, with the tip each was read from.

        Refs under refs/frequency/subjects/ that are not ours, and unreadable subject.json
        files, are skipped and described in `Snapshot.problems` rather than failing the read.
        """
        self._cache.refresh()
        subjects: dict[tuple[str, str], Subject] = {}
        tips: dict[tuple[str, str], str] = {}
        problems: list[str] = []
        misses: list[tuple[bytes, bytes]] = []
        for ref, oid in sorted(self.list_refs(refs.SUBJECTS).items()):
            key = refs.parse_subject_ref(ref)
            if key is None:
                problems.append(
                    f"{ref}: not a Frequency subject ref (expected {refs.SUBJECTS}"
                    "<factory>/<subject>); ignored"
                )
                continue
            boid = oid.encode()
            if len(boid) != 40 or not _HEX.issuperset(boid):
                problems.append(f"{ref}: does not hold a commit id; ignored")
                continue
            parsed = self._parsed.get(boid)
            if parsed is not None:
                subjects[key] = parsed
                tips[key] = oid
                continue
            cached = self._cache.get(boid)
            try:
                if cached is not None:
                    subj = refs.subject_from_doc(json.loads(cached), where=ref)
                else:
                    raw = self._subject_at(oid, ref)
                    subj = refs.subject_from_json(raw, where=ref)
                    misses.append((boid, raw))
            except CorruptState as exc:
                problems.append(exc.message)
                continue
            if (subj.factory, subj.name) != key:
                problems.append(f"{ref}: subject.json names {subj.factory}/{subj.name}; ignored")
                continue
            subjects[key] = subj
            tips[key] = oid
            self._parsed[boid] = subj
        if len(self._parsed) > 4 * len(subjects) + 10_000:
            self._parsed = {t.encode(): subjects[k] for k, t in tips.items()}
        if misses:
            self._cache.add(misses)
        self._cache.compact({t.encode() for t in tips.values()})
        broken_locks: dict[str, str] = {}
        locks = {
            lock.name: lock
            for lock in self._docs_under(
                refs.LOCKS, refs.LOCK_FILE, refs.lock_from_json, problems, broken_locks
            )
        }
        broken_controls: dict[str, str] = {}
        controls = {
            c.factory: c
            for c in self._docs_under(
                refs.CONTROL, refs.CONTROL_FILE, refs.control_from_json, problems, broken_controls
            )
        }
        counts: dict[tuple[str, str], int] = {}
        for (f, _), subj in subjects.items():
            counts[(f, subj.state)] = counts.get((f, subj.state), 0) + 1
        return Snapshot(
            state_counts=counts,
            subjects=subjects,
            tips=tips,
            problems=tuple(problems),
            locks=locks,
            controls=controls,
            broken_locks={refs.lock_name(r): p for r, p in broken_locks.items()},
            broken_controls={r[len(refs.CONTROL) :]: p for r, p in broken_controls.items()},
        )

    def _docs_under(
        self,
        prefix: str,
        name: str,
        parse: Callable[..., T],
        problems: list[str],
        broken: dict[str, str],
    ) -> list[T]:
        """File `name` of every ref under `prefix`, parsed; each unreadable one goes to
        `problems` and to `broken` (ref → problem)."""
        out = []
        for ref, oid in sorted(self.list_refs(prefix).items()):
            try:
                out.append(parse(self.doc_at(oid, name, ref), where=ref))
            except CorruptState as exc:
                problems.append(exc.message)
                broken[ref] = exc.message
        return out

    def read_subject(self, factory: str, name: str) -> tuple[Subject, str]:
        """One subject and its tip; UnknownSubject or CorruptState."""
        ref = refs.subject_ref(factory, name)
        oid = self.read_ref(ref)
        if oid is None:
            raise UnknownSubject(
                f"no subject {name!r} in factory {factory!r}",
                hint=Hint(text="see", command=("status", factory)),
            )
        self._cache.refresh()
        cached = self._cache.get(oid.encode())
        if cached is not None:
            return refs.subject_from_doc(json.loads(cached), where=ref), oid
        raw = self._subject_at(oid, ref)
        subj = refs.subject_from_json(raw, where=ref)
        self._cache.add([(oid.encode(), raw)])
        return subj, oid

    def first_parent(self, oid: str) -> str | None:
        """The first parent of commit `oid` (the previous event of an append-only chain)."""
        commit = self.repo.object_store[oid.encode()]
        return commit.parents[0].decode() if commit.parents else None

    def branch_tip(self, branch: str | None) -> str | None:
        """The commit a branch points at (None: whatever HEAD names); None if unborn."""
        if branch is None:
            name = b"HEAD"
        else:
            name = (branch if branch.startswith("refs/") else f"refs/heads/{branch}").encode()
        try:
            with self._write_lock:
                return self.repo.refs[name].decode()  # type: ignore[no-any-return]
        except KeyError:
            return None

    def changed_paths(self, old: str | None, new: str) -> list[str]:
        """Paths that differ between the trees of commits `old` and `new` (every path of
        `new` when `old` is None)."""
        from dulwich.diff_tree import tree_changes

        store = self.repo.object_store
        new_tree = store[new.encode()].tree
        old_tree = store[old.encode()].tree if old else None
        out = []
        for change in tree_changes(store, old_tree, new_tree):
            for side in (change.old, change.new):
                if side is not None and side.path is not None:
                    out.append(side.path.decode("utf-8", "replace"))
        return sorted(set(out))

    def read_output(self, oid: str) -> bytes | None:
        """The output tail kept in commit `oid`'s tree, if any."""
        store = self.repo.object_store
        try:
            tree = store[store[oid.encode()].tree]
            _mode, sha = tree[refs.OUTPUT_FILE.encode()]
            return bytes(store[sha].data)
        except KeyError:
            return None

    def history(self, tips: dict[str, str], *, limit: int | None = None) -> Iterator[HistoryEntry]:
        """Commits reachable from `tips` (ref → oid), newest first; each commit once."""
        if not tips:
            return
        owner = {oid.encode(): ref for ref, oid in tips.items()}
        try:
            walker = self.repo.get_walker(include=list(owner), max_entries=limit)
            yield from self._walk(walker, owner)
        except MissingCommitError as exc:
            raise CorruptState(
                f"the history of {', '.join(sorted(tips))} names a commit that is not in this "
                f"repository ({exc!s})"
            ) from None

    def _walk(self, walker: Iterable[WalkEntry], owner: dict[bytes, str]) -> Iterator[HistoryEntry]:
        for entry in walker:
            c = entry.commit
            ref = owner.get(c.id, "")
            for p in c.parents:
                owner.setdefault(p, ref)
            message = c.message.decode("utf-8", "replace")
            yield HistoryEntry(
                oid=c.id.decode(),
                ref=ref,
                at=datetime.fromtimestamp(c.commit_time, UTC),
                message=message,
                renewal=refs.parse_trailers(message).get("Freq-Event") == "renewed",
            )

    # ------------------------------------------------------------ logs

    def log_path(self, factory: str, subject: str, step: str, attempt: int) -> Path:
        """Where the full output of one attempt is kept (not in git: it can be large)."""
        return self.state_dir / "logs" / factory / subject / f"{step}-{attempt}.log"


def short(oid: str) -> str:
    """A commit id shortened for display."""
    return oid[:12]
