"""The Store: compare-and-swap writes, ref batches, bulk creation, and the snapshot read.

Must not import click, subprocess or any freq module above the store, nor dulwich at import
time: everything that touches git objects or writes refs goes through freq.store.git,
imported on first need, so that reading refs and caches (the snapshot of a warm cache) costs
no dulwich at all. The rules live here: every write checks the state folder first, retries
git's lock files with jittered backoff (GIT-NOTES gap 2, 3), fsyncs objects before the ref
that names them (gap 8), and rings the beacon after a ref moved.

About 560 lines, above STYLE's ~500: every write method shares those rules, and the reads
that sit beside them share the caches that the writes fill; the whole-state read is
freq.store.snapshot and the dulwich calls are freq.store.git.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from freq import refs
from freq.clock import Clock, Random, system_rng
from freq.errors import (
    BatchIncomplete,
    BrokenHistory,
    CorruptState,
    DiskFull,
    GitLockHeld,
    Hint,
    RefConflict,
    RemoteUnreachable,
    StateDirUnusable,
    SubjectExists,
    UnknownSubject,
    WriteBlocked,
    WriteFailed,
)
from freq.runtime import Event, Snapshot, Subject
from freq.store import locate, lockfiles, refdb
from freq.store.archive import ArchiveReader
from freq.store.beacon import Beacon
from freq.store.cache import DocCache
from freq.store.listing import LooseRefs, OwnWrites, PackedRefs
from freq.store.mirror import Mirror
from freq.store.records import ChainLink, HistoryEntry, RefUpdate
from freq.store.snapshot import Reader, parse_cached, problem_line, subject_of

if TYPE_CHECKING:
    from dulwich.objects import Commit
    from dulwich.repo import Repo


_HEX = frozenset(b"0123456789abcdef")
T = TypeVar("T")
LOCK_WAIT = 2.0  # seconds a write waits for a live writer's git lock before GitLockHeld
_MAX_STAGED = 256  # prepared commits kept unwritten; beyond, the oldest goes to disk


@functools.cache
def _git() -> ModuleType:
    """freq.store.git, imported on first need (it imports dulwich)."""
    from freq.store import git

    return git


class Store:
    """A handle on one repository's refs/frequency/* state."""

    def __init__(self, where: locate.Location, *, clock: Clock, rng: Random | None = None) -> None:
        self.clock = clock
        self._rng = rng or system_rng()
        self.root = where.root
        self.common_dir = where.common_dir
        self.state_dir = self.common_dir / "frequency"
        self._repo: Repo | None = None
        self._cache = DocCache(self.state_dir / "cache" / "subjects.v1")
        self._doc_cache = DocCache(self.state_dir / "cache" / "docs.v1")
        # entries of commits found broken, moved out of the two caches above: no snapshot
        # reads them, `cleanup --repair` does (the last copy of a state git lost)
        self._lost_subjects = DocCache(self.state_dir / "cache" / "subjects.broken.v1")
        self._lost_docs = DocCache(self.state_dir / "cache" / "docs.broken.v1")
        # dulwich's refs container caches packed-refs without a lock of its own: every call
        # into it (reads of HEAD and branches; Frequency writes its refs itself) goes
        # through this one, or threads corrupt the cache
        self._write_lock = threading.RLock()
        self._beacon = Beacon(self.state_dir / "beacon", self.common_dir / "packed-refs")
        self._docs: dict[tuple[str, str], bytes] = {}
        self.archives = ArchiveReader(
            counts=lambda tip, ref: _git().archive_counts(self.repo, tip, ref),
            shard=lambda tip, shard, ref: _git().archive_shard(self.repo, tip, shard, ref),
            subject=lambda last, ref: refs.subject_from_json(
                self._file_at(last, refs.SUBJECT_FILE, ref), where=ref
            ),
        )
        # reads many blobs with one git process (freq.proc.cat_files, given by the caller:
        # the store starts no process itself); None: every object is read in-process
        self.bulk: Callable[[list[str]], dict[str, bytes]] | None = None
        self._reader = Reader(
            list_refs=self.list_refs,
            file_at=self._subject_file,
            doc_at=self.doc_at,
            subjects=self._cache,
            documents=self._doc_cache,
            archives=self.archives,
            bulk=lambda specs: self.bulk(specs) if self.bulk is not None else {},
        )
        self._parsed = self._reader.parsed  # tip commit id -> Subject (immutable)
        self._whole: set[bytes] = set()  # tips found whole (see `verify`)
        # commit id -> its output tail's tree entry, for commits prepared here: a claim or
        # record on top of one keeps that entry without reading the commit and its tree
        self._outputs: dict[str, tuple[int, bytes] | None] = {}
        self.identity = f"Frequency <freq@{os.uname().nodename}>".encode()
        self._state_ok = False
        self.lock_wait = LOCK_WAIT
        self._staged: dict[str, list[Any]] = {}  # prepared commit -> its unwritten objects
        self._staged_lock = threading.Lock()
        # packed-refs and the loose ref files, each read again only when replaced
        self._packed = PackedRefs(str(self.common_dir))
        self._loose = LooseRefs()
        self._own: OwnWrites | None = None  # listings kept between reads (keep_listings)
        self.mirror: Mirror | None = None  # remote mode (`attach`)
        self._locker = lockfiles.Locker(
            guard=str(self.state_dir / "sweep.guard"), now=lambda: self.clock.now().timestamp()
        )

    # ------------------------------------------------------------ opening

    @classmethod
    def discover(cls, start: str | os.PathLike[str], *, clock: Clock) -> Store:
        """Open the repository containing `start`; NotARepository when there is none."""
        return cls(locate.find(start), clock=clock)

    @classmethod
    def at_git_dir(cls, git_dir: str | os.PathLike[str], *, clock: Clock) -> Store:
        """Open the repository whose git folder is `git_dir` (a bare repository, as a
        server-side hook runs in); NotARepository when it is not one."""
        return cls(locate.at_git_dir(git_dir), clock=clock)

    @property
    def repo(self) -> Repo:
        """The dulwich repository, opened on first use."""
        if self._repo is None:
            with self._write_lock:
                if self._repo is None:
                    self._repo = _git().open_repo(self.root)
        return self._repo

    def close(self) -> None:
        """Release file handles."""
        if self._repo is not None:
            self._repo.close()
            self._repo = None

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
        with contextlib.suppress(OSError):
            if os.statvfs(d).f_flag & os.ST_RDONLY:
                raise StateDirUnusable(
                    f"{shown} is on a read-only file system; nothing was written",
                    hint="reading commands (status, plan, show, log) still work",
                )
        if not os.access(d, os.R_OK | os.W_OK | os.X_OK):
            raise StateDirUnusable(
                f"{shown} is not readable and writable by this user; nothing was written",
                hint=f"fix its permissions (`chmod u+rwx {shown}`) and retry",
            )
        self._state_ok = True

    # ------------------------------------------------------------ refs

    def keep_listings(self, trust: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        """Keep ref listings between reads while only this handle writes, each trusted for
        `trust` seconds at most (freq.store.listing.OwnWrites): for a long-lived handle
        that lists the same refs again and again, as the run loop does at every cycle.
        `monotonic`: real time, whatever clock the Store runs on (git's own writes are in
        real time); tests give another."""
        self._own = OwnWrites(self._beacon.token, self._beacon.others_wrote, trust, monotonic)

    def list_refs(self, prefix: str) -> dict[str, str]:
        """Every ref under `prefix` (ending in /) → commit id, loose refs over packed ones."""
        own = self._own
        if own is None:
            return self._scan_refs(prefix)
        kept = own.listing(prefix)
        if kept is not None:
            return kept
        mark = own.before_scan()
        found = self._scan_refs(prefix)
        own.scanned(prefix, mark, found)
        return found

    def _scan_refs(self, prefix: str) -> dict[str, str]:
        loose: dict[str, str] = {}
        # loose refs first, then packed-refs, as git reads them: `git pack-refs` writes
        # packed-refs before it removes the loose files, so this order never misses a ref
        # nor sees an older value of it
        self._loose.scan(os.path.join(self.common_dir, prefix), prefix, loose)
        # packed-refs read directly (dulwich checks every name's format: 60 ms for 10,000
        # subjects), and only when it was replaced since the last read
        out = self._packed.under(prefix)
        out.update(loose)
        return out

    def loose_refs(self) -> int:
        """How many refs under refs/frequency/ are loose files (not in packed-refs)."""
        n = 0
        for _dir, _subdirs, files in os.walk(os.path.join(self.common_dir, refs.ROOT)):
            n += sum(1 for f in files if not f.endswith(".lock"))
        return n

    def read_ref(self, ref: str) -> str | None:
        """The commit id a ref points at, or None.

        A loose ref under refs/frequency/ is read straight from its file (git replaces it by
        rename, so a read sees one whole value) without waiting for this handle's writers;
        packed and symbolic refs, HEAD and the user's branches (per-worktree refs live
        elsewhere in a linked worktree) go through dulwich."""
        value = b""
        if ref.startswith(refs.ROOT):
            try:
                with open(os.path.join(self.common_dir, ref), "rb") as f:
                    value = f.read(128).strip()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return self._packed.get(ref)
            except OSError as exc:
                raise CorruptState(f"{ref}: cannot be read ({exc.strerror})") from None
        if len(value) == 40 and _HEX.issuperset(value):
            return value.decode()
        with self._write_lock:
            result: str | None = _git().read_ref(self.repo, ref)
            return result

    def _retry_locked(self, what: str, fn: Callable[[], T], wait: float | None = None) -> T:
        """Run a ref update, retrying git lock contention with jittered backoff (gap 2, 3)
        for at most `lock_wait` seconds: a lock whose writer is gone is cleared inside the
        locker (freq.store.lockfiles), so what outlasts the wait is a live writer's."""
        deadline = self.clock.monotonic() + (self.lock_wait if wait is None else wait)
        delay = 0.001
        last = what
        while True:
            try:
                return fn()
            except lockfiles.Held as exc:
                last = exc.path
            except FileNotFoundError:
                last = what  # a folder of refs removed under us (git pack-refs prunes them)
            except OSError as exc:
                if lockfiles.no_space(exc):
                    raise DiskFull(f"disk full while writing {what}; nothing was changed") from None
                where = os.path.relpath(exc.filename, self.common_dir) if exc.filename else what
                raise WriteFailed(
                    f"cannot write {what}: {exc.strerror or exc} ({where}); nothing was changed",
                    hint="check that the repository is writable by this user, and `git fsck`",
                ) from None
            if self.clock.monotonic() >= deadline:
                break
            self.clock.sleep(delay * (0.5 + self._rng.random()))
            delay = min(delay * 2, 0.05)
        raise GitLockHeld(
            f"git lock {os.path.relpath(last, self.common_dir) if os.path.isabs(last) else last}"
            " is held by another process",
            hint="retry; Frequency clears a lock whose writer is gone by itself",
        )

    def sweep_locks(self, *, remove: bool = True) -> list[str]:
        """Remove lock files and temporary object files that killed writers left under
        refs/frequency, beside packed-refs and in the object store (those nobody holds,
        older than their grace); the paths removed, relative to the git folder
        (`remove=False`: the paths that would be)."""
        cd = str(self.common_dir)
        removed = self._locker.sweep(
            os.path.join(cd, refs.ROOT.rstrip("/")),
            match=lambda n: n.endswith(".lock"),
            grace=lockfiles.REF_GRACE,
            remove=remove,
        )
        packed = os.path.join(cd, "packed-refs.lock")
        if os.path.exists(packed) and self._locker.clear_if_stale(
            packed, grace=lockfiles.PACKED_GRACE, remove=remove
        ):
            removed.append(packed)
        removed += self._locker.sweep(
            os.path.join(cd, "objects"),
            match=lambda n: (
                n.endswith(".lock") or n.startswith(("tmp_obj_freq_", "tmp_freq_pack_"))
            ),
            grace=lockfiles.OBJECT_GRACE,
            remove=remove,
        )
        return [os.path.relpath(p, cd) for p in removed]

    # ------------------------------------------------------------ writes

    def _stage(self, objs: Sequence[Any], commit: Any) -> str:
        """Keep a prepared commit's objects until a ref update names it: they are written
        only once every ref of that update is locked and checked (freq.store.refdb)."""
        spill: list[Any] = []
        oid = str(commit.id.decode())
        with self._staged_lock:
            if len(self._staged) >= _MAX_STAGED:  # prepared, never used nor discarded: to
                spill = self._staged.pop(next(iter(self._staged)))  # disk, rather than risk
            self._staged[oid] = list(objs)  # a ref naming a missing commit
        self._write_objects(spill)
        return oid

    def _staged_for(self, batch: Sequence[RefUpdate]) -> tuple[list[Any], set[str]]:
        """The staged objects the new values of `batch` name (and staged parents of those),
        and the commits they make up."""
        out: list[Any] = []
        todo = [u.new for u in batch if u.new is not None]
        seen: set[str] = set()
        with self._staged_lock:
            while todo:
                oid = todo.pop()
                objs = self._staged.get(oid)
                if objs is None or oid in seen:
                    continue
                seen.add(oid)
                out += objs
                todo += [p.decode() for p in objs[-1].parents]
        return out, seen

    def _write_objects(self, objs: Sequence[Any], also: Sequence[int] = ()) -> None:
        """Write `objs` durably, and make the files `also` (ref locks) durable with them."""
        if not objs:
            refdb.sync_all(also)
            return
        _git().write_objects(
            self.repo,
            objs,
            tmp_name=f"tmp_freq_pack_{os.getpid()}_{self._rng.getrandbits(32):08x}",
            also=also,
        )

    def _apply(
        self,
        batch: Sequence[RefUpdate],
        what: str,
        wait: float | None = None,
        *,
        keep: bool = False,
        also: Sequence[RefUpdate] = (),
    ) -> None:
        """Apply a ref batch (freq.store.refdb.apply) with its staged objects, retried
        while a live writer holds one of its locks; the beacon rings once it took effect.

        In remote mode the batch is pushed first (freq.store.mirror): the remote is the
        truth, and the local refs follow once it took the batch. `keep`: when the remote
        cannot be reached, record the batch locally anyway (a finished attempt's result,
        pushed by the next refresh) instead of raising RemoteUnreachable. `also`: refs
        moved on the remote only, in the same atomic push (see update)."""
        self.require_state_dir()
        objs, commits = self._staged_for(batch)
        pushed = False
        moved: Sequence[RefUpdate] = batch
        try:
            if self.mirror is not None:
                pushed = self._push(batch, objs, commits, keep=keep, also=also)
            # no lock of this process is needed: each ref's lock file serialises its writers,
            # threads included, and the objects' fsyncs of two threads overlap
            try:
                self._apply_now(batch, what, wait, objs)
            except RefConflict:
                if not pushed:
                    raise
                # the remote took it; another local process moved the local ref since (it
                # follows the remote at the next refresh): the objects are kept
                self._write_objects(objs)
                moved = ()  # no local ref did
        finally:
            self._unstage(batch)
        self._whole.update(c.encode() for c in commits)  # written whole just now
        self._moved(moved)

    def _apply_now(
        self, batch: Sequence[RefUpdate], what: str, wait: float | None, objs: Sequence[Any]
    ) -> None:
        try:
            self._apply_refs(batch, what, wait, objs)
        except (BatchIncomplete, RefConflict):
            # some refs moved, or one was not where the listing said: the next one scans
            if self._own is not None:
                self._own.forget()
            raise

    def _apply_refs(
        self, batch: Sequence[RefUpdate], what: str, wait: float | None, objs: Sequence[Any]
    ) -> None:
        self._retry_locked(
            what,
            lambda: refdb.apply(
                str(self.common_dir),
                batch,
                locker=self._locker,
                write_objects=lambda locks: self._write_objects(objs, locks),
                packed=self._packed.get,
            ),
            wait,
        )

    def _push(
        self,
        batch: Sequence[RefUpdate],
        objs: list[Any],
        commits: set[str],
        *,
        keep: bool,
        also: Sequence[RefUpdate] = (),
    ) -> bool:
        """Push `batch` (and `also`) to the remote before it is applied here; whether it was
        pushed (False: kept for later, the remote being unreachable and `keep` set)."""
        assert self.mirror is not None
        try:
            ids = {o.id for o in objs}
            whole = (
                not also
                and all(u.new is None or u.new in commits for u in batch)
                and all(o.tree in ids for o in objs if o.type_name == b"commit")
            )
            if whole:  # every object is new and staged: the pack is those, no walk
                self.mirror.push(batch, objs)
            else:  # a commit written before (a branch, a replayed event): the walk finds them
                self._write_objects(objs)
                self.mirror.push(batch, None, also)
        except RemoteUnreachable:
            if not keep:
                raise
            return False
        return True

    def follow(self, batch: Sequence[RefUpdate]) -> None:
        """Move local refs (CAS) without pushing: to values fetched from the remote, or
        prepared here for a push made already (freq.sync)."""
        self.require_state_dir()
        objs, _ = self._staged_for(batch)
        try:
            self._apply_now(batch, batch[-1].ref, None, objs)
        finally:
            self._unstage(batch)
        self._moved(batch)

    def _moved(self, batch: Sequence[RefUpdate]) -> None:
        """`batch` took effect on disk: remembered for kept listings, and the beacon rings."""
        if self._own is not None:
            self._own.wrote((u.ref, u.new) for u in batch)
        self._beacon.ring()

    def _unstage(self, batch: Sequence[RefUpdate]) -> None:
        """Forget the staged objects of `batch`'s new values: written, or never to be."""
        with self._staged_lock:
            for u in batch:
                if u.new is not None:
                    self._staged.pop(u.new, None)

    def attach(self, name: str, url: str) -> Mirror:
        """Remote mode: every later write is pushed to `url` first (see freq.store.mirror)."""
        from freq.store.wire import Wire

        self.mirror = Mirror(
            Wire(name, url, prefixes=(refs.ROOT,)),
            repo=lambda: self.repo,
            list_refs=self.list_refs,
            apply_local=self.follow,
            descends=lambda tip, old: self.descends(tip, old, limit=10_000),
            monotonic=self.clock.monotonic,
        )
        return self.mirror

    def _swap(self, ref: str, new: bytes, expected: str | None) -> None:
        """Move `ref` to `new` only if it is at `expected` (None: only if absent)."""
        self._apply([RefUpdate(ref, new.decode(), expected)], ref)

    def change_token(self) -> tuple[int, ...]:
        """A value that changes whenever a local writer moved a ref under refs/frequency."""
        return self._beacon.token()

    def others_wrote(self, token: tuple[int, ...]) -> bool:
        """Whether another process moved a ref since `token` (from change_token) was taken;
        this handle's own writes do not count."""
        return self._beacon.others_wrote(token)

    def advance(
        self,
        ref: str,
        subject: Subject,
        event: Event,
        *,
        expected: str | None,
        output: bytes | None = None,
        keep: bool = False,
        also: Sequence[RefUpdate] = (),
    ) -> str:
        """Commit `subject` + `event` on top of `expected` and move `ref` only if it is there.

        `expected=None` creates the ref and fails if it exists. `output` replaces the output
        tail kept in the tree; None keeps the previous one. Raises RefConflict on a lost race.
        `keep`: in remote mode, recorded here when the remote cannot be reached (see _apply).
        `also`: refs moved on the remote only, in the same push (see update).
        """
        oid = self.prepare(subject, event, parent=expected, output=output)
        self._apply([RefUpdate(ref, oid, expected)], ref, keep=keep, also=self._also(also))
        return oid

    def prepare(
        self, subject: Subject, event: Event, *, parent: str | None, output: bytes | None = None
    ) -> str:
        """Build the commit `advance` would write, without moving any ref; its id.

        A claim is prepared first so that its batch can point cap slots at it (freq.claims).
        Its objects reach the disk with the first ref update that names it, once that
        update's refs are locked and checked: a lost race writes nothing."""
        git = _git()
        raw = refs.subject_to_json(subject)
        inherited = None
        if output is None and parent is not None:
            try:
                inherited = self._outputs[parent]
            except KeyError:
                inherited = git.output_entry(self.repo, parent)
        tree, blobs = git.subject_tree(raw, output, inherited)
        commit = git.make_commit(
            self.identity, event.at, refs.format_message(event), tree.id, parent
        )
        oid = self._stage([*blobs, tree, commit], commit)
        self._remember_output(oid, git.output_of(tree))  # the next claim on it reads no object
        self._cache.add([(commit.id, raw)])
        self._parsed[commit.id] = subject
        return oid

    def _remember_output(self, oid: str, entry: tuple[int, bytes] | None) -> None:
        if len(self._outputs) > 10_000:
            self._outputs.clear()
        self._outputs[oid] = entry

    def restack(self, oid: str, parent: str) -> str:
        """Prepare a copy of commit `oid` on `parent` (staged like `prepare`); its id."""
        commit = _git().restacked(self.repo, oid, parent)
        return self._stage([commit], commit)

    def discard(self, oid: str) -> None:
        """Forget a prepared commit that no ref update will name (a claim that found its
        cap full): its objects are never written."""
        with self._staged_lock:
            self._staged.pop(oid, None)

    def swap(self, ref: str, oid: str, *, expected: str | None) -> None:
        """Move `ref` to the existing commit `oid` if it is at `expected` (None: absent)."""
        self._swap(ref, oid.encode(), expected)

    def update(
        self,
        batch: Sequence[RefUpdate],
        *,
        wait: float | None = None,
        also: Sequence[RefUpdate] = (),
    ) -> None:
        """Move every ref of `batch` from its expected value to its new one, or none of them.

        Every ref is locked (in name order, so two batches never wait on each other in a
        cycle) and checked before any is written; RefConflict names the first ref that
        moved. The refs are then written in the order given: put the ref that makes the
        batch take effect (a claim's subject ref) last. A failure while writing (a full
        disk) after some refs moved is BatchIncomplete, naming them; before any moved it is
        the usual error (nothing changed). `wait`: how long to wait for a git lock a live
        process holds (default `lock_wait`).

        `also` (remote mode; ignored without a remote): refs outside refs/frequency that the
        same atomic push moves on the remote only, such as a landing's target branch; the
        local ones are the caller's to move once this returned.
        """
        if not batch:
            return
        names = [u.ref for u in batch]
        if len(set(names)) != len(names):
            raise ValueError(f"a batch names a ref twice: {names}")
        self._apply(batch, names[-1], wait, also=self._also(also))

    def _also(self, also: Sequence[RefUpdate]) -> Sequence[RefUpdate]:
        if self.mirror is None:
            return ()
        inside = [u.ref for u in also if u.ref.startswith(refs.ROOT)]
        if inside:
            raise ValueError(f"remote-only updates must be outside {refs.ROOT}: {inside}")
        return also

    def remote_branches(self, names: Sequence[str], *, haves: Sequence[str] = ()) -> dict[str, str]:
        """Remote mode: the remote's refs/heads/<name> for each of `names` it has (name →
        commit), fetched with their objects, and refs/remotes/<remote>/<name> moved to
        them. Without a remote: the local branches. `haves`: commits they build on."""
        if self.mirror is None:
            found = {n: self.read_ref(f"refs/heads/{n}") for n in names}
            return {n: oid for n, oid in found.items() if oid is not None}
        tracking = {n: f"refs/remotes/{self.mirror.name}/{n}" for n in names}
        known = {n: self.read_ref(r) for n, r in tracking.items()}
        local = [self.read_ref(f"refs/heads/{n}") for n in names]
        got = self.mirror.branches(
            names, [*haves, *(k for k in [*known.values(), *local] if k is not None)]
        )
        for n, oid in got.items():
            self.track(n, oid, known[n])
        return got

    def track(self, branch: str, oid: str, old: str | None) -> None:
        """Remote mode: move refs/remotes/<remote>/<branch> from `old` to `oid`, as `git
        fetch` would after seeing it there; best effort (a concurrent fetch may win)."""
        if self.mirror is None or old == oid:
            return
        ref = f"refs/remotes/{self.mirror.name}/{branch}"
        with contextlib.suppress(RefConflict, WriteBlocked):
            self._apply_now([RefUpdate(ref, oid, old)], ref, 0.0, [])

    def has_commit(self, oid: str) -> bool:
        """Whether the object store holds commit `oid` (a branch fetched, or made here)."""
        return bool(_git().is_commit(self.repo, oid))

    def delete(self, ref: str, *, expected: str) -> bool:
        """Delete `ref` if it still points at `expected`; False when it moved meanwhile."""
        try:
            self._apply([RefUpdate(ref, None, expected)], ref)
        except RefConflict:
            return False
        return True

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
        """Build the commit `write_doc` would write, without moving any ref; its id (for a
        batch of ref updates, see `update`; staged like `prepare`)."""
        git = _git()
        tree, blobs = git.doc_tree(files)
        commit = git.make_commit(self.identity, at, message, tree.id, parent)
        oid = self._stage([*blobs, tree, commit], commit)
        for name, data in files.items():
            self._docs[(oid, name)] = data
        return oid

    def fold(self, factory: str, items: Sequence[tuple[Subject, str]], *, at: datetime) -> str:
        """Fold finished subjects (each with the tip it was read at) into the factory's
        archive by one commit (a merge of the archive before it and their last commits),
        then delete their refs: one batch, the archive first (SPEC §3), the deletions one
        rewrite of packed-refs. A crash between leaves subjects archived and live, which
        readers tolerate (the live ref wins) and the next pass finishes. RefConflict when
        any of them moved; the new archive commit's id."""
        ref = refs.archive_ref(factory)
        old = self.read_ref(ref)
        base: str | None = None
        git = _git()
        if old is None:  # a root, so that every fold's first parent is the archive before
            root, blobs = git.doc_tree({})  # it (`git log --first-parent` of the archive
            first = git.make_commit(  # lists its folds alone)
                self.identity,
                at,
                f"{factory}: archive\n\nFreq-Factory: {factory}\n",
                root.id,
                None,
            )
            base = self._stage([*blobs, root, first], first)
        names = ", ".join(s.name for s, _ in items[:3]) + (" ..." if len(items) > 3 else "")
        commit, objs = git.archive_fold(
            self.repo,
            tip=old,
            ref=ref,
            items=[(s.name, t, s.state) for s, t in items],
            identity=self.identity,
            at=at,
            message=(
                f"{factory}: archived {len(items)} ({names})\n\n"
                f"Freq-Factory: {factory}\nFreq-Archived: {len(items)}\n"
            ),
            parent=base,
        )
        oid = self._stage(objs, commit)
        batch = [RefUpdate(ref, oid, old)]
        batch += [RefUpdate(refs.subject_ref(factory, s.name), None, t) for s, t in items]
        try:
            self._apply(batch, ref)
        except BaseException:
            self.discard(oid)
            if base is not None:
                self.discard(base)
            raise
        return oid

    def archived(self, factory: str, name: str) -> tuple[Subject, str] | None:
        """The archived subject `factory/name` and its last commit, or None."""
        return self.archived_of(factory, [name]).get(name)

    def archived_of(self, factory: str, names: Iterable[str]) -> dict[str, tuple[Subject, str]]:
        """Those of `names` archived in `factory`: name → (subject, its last commit)."""
        tip = self.read_ref(refs.archive_ref(factory))
        if tip is None:
            return {}
        view = self.archives.view({factory: tip})
        found = {n: view.get(factory, n) for n in names}
        return {n: f for n, f in found.items() if f is not None}

    def find_subject(self, factory: str, name: str) -> tuple[Subject, str, bool]:
        """The subject live, or else archived: (subject, tip, archived). UnknownSubject
        when it is neither."""
        try:
            subj, tip = self.read_subject(factory, name)
        except UnknownSubject:
            found = self.archived(factory, name)
            if found is None:
                raise
            return found[0], found[1], True
        return subj, tip, False

    def reopen(self, subject: Subject, event: Event, *, parent: str) -> str:
        """Create the ref of an archived subject again, its history going on from its last
        commit `parent`, and take it out of the archive, in one batch in that order (a
        crash between leaves it live and archived, which readers tolerate). SubjectExists
        when the ref exists; RefConflict when the archive moved meanwhile."""
        ref = refs.subject_ref(subject.factory, subject.name)
        oid = self.prepare(subject, event, parent=parent)
        folder = refs.archive_ref(subject.factory)
        old = self.read_ref(folder)
        batch = [RefUpdate(ref, oid, None)]
        if old is not None:
            commit, objs = _git().archive_fold(
                self.repo,
                tip=old,
                ref=folder,
                items=(),
                drop=(subject.name,),
                identity=self.identity,
                at=event.at,
                message=(
                    f"{subject.factory}: reopened {subject.name}\n\n"
                    f"Freq-Factory: {subject.factory}\nFreq-Subject: {subject.name}\n"
                ),
            )
            batch.append(RefUpdate(folder, self._stage(objs, commit), old))
        try:
            self._apply(batch, ref)
        except RefConflict as exc:
            if exc.ref == ref:
                raise SubjectExists(f"subject {subject.factory}/{subject.name} exists") from None
            raise
        return oid

    def create_many(self, items: Sequence[tuple[Subject, Event]]) -> list[str]:
        """Create many subject refs in one packed-refs write: all of them or none.

        Every creation of a subject ref goes through here, under one creation lock, so the
        check and the write cannot interleave with another creator's; packed-refs is then
        rewritten under git's own lock (one rename), after the objects were written.
        Raises SubjectExists (naming them) when any already exists; nothing is written then.
        """
        if not items:
            return []
        git = _git()
        objs: list[Any] = []
        new_refs: dict[bytes, bytes] = {}
        cache_items = []
        for subject, event in items:
            raw = refs.subject_to_json(subject)
            tree, blobs = git.subject_tree(raw, None, None)
            commit = git.make_commit(
                self.identity, event.at, refs.format_message(event), tree.id, None
            )
            objs += [*blobs, tree, commit]
            name = refs.subject_ref(subject.factory, subject.name).encode()
            if name in new_refs:
                raise SubjectExists(f"subject {subject.factory}/{subject.name} is named twice")
            new_refs[name] = commit.id
            cache_items.append((commit.id, raw))
        self.require_state_dir()
        if self.mirror is not None:
            creations = [RefUpdate(n.decode(), o.decode(), None) for n, o in new_refs.items()]
            try:
                self.mirror.push(creations, objs)
            except RefConflict as exc:
                _exists([exc.ref])
        self._retry_locked(
            "packed-refs",
            lambda: refdb.add_packed(
                str(self.common_dir),
                new_refs,
                locker=self._locker,
                guard=str(self.state_dir / "create"),
                clash=_exists,
                write_objects=lambda: self._write_objects(objs),
            ),
        )
        self._whole.update(new_refs.values())
        self._beacon.ring()
        self._cache.add(cache_items)
        return [oid.decode() for oid in new_refs.values()]

    # ------------------------------------------------------------ reads

    def commit_at(self, oid: str, ref: str) -> Commit:
        """The commit `ref` points at; CorruptState when it is missing or not a commit."""
        commit: Commit = _git().commit_at(self.repo, oid, ref)
        return commit

    def readable_tips(self, tips: dict[str, str]) -> tuple[dict[str, str], list[str]]:
        """(the tips that name a commit, a problem line for each one that does not)."""
        good: dict[str, str] = {}
        problems: list[str] = []
        for ref, oid in tips.items():
            try:
                self.commit_at(oid, ref)
            except CorruptState as exc:
                problems.append(problem_line(exc, "ignored"))
                continue
            good[ref] = oid
        return good, problems

    def subject_at(self, oid: str, ref: str) -> Subject:
        """The subject.json of commit `oid` (cached by commit id)."""
        key = oid.encode()
        hit = self._parsed.get(key)
        if hit is not None:
            return hit
        doc = self._cache.get(key)
        if doc is None:  # perhaps another process cached it since: read what it appended
            self._cache.refresh()
            doc = self._cache.get(key)
        subj, fresh = subject_of(doc, oid, ref, self._subject_file)
        if fresh is not None:
            self._cache.add([(key, fresh)])
        self._parsed[key] = subj
        return subj

    def _file_at(self, oid: str, name: str, ref: str) -> bytes:
        data: bytes = _git().file_at(self.repo, oid, name, ref)
        return data

    def file_at(self, oid: str, name: str, ref: str) -> bytes:
        """File `name` of commit `oid`'s tree (uncached); CorruptState when there is none,
        BrokenHistory when an object on the way is missing."""
        return self._file_at(oid, name, ref)

    def _subject_file(self, oid: str, name: str, ref: str) -> bytes:
        """A subject commit's file, read only when the whole commit is there: a tip whose
        tree lost a file is broken for the snapshot as it is for `verify`, so the two agree
        on which subjects a worker may build on."""
        data: bytes = _git().file_at(self.repo, oid, name, ref, whole_tree=True)
        return data

    def verify(self, oid: str, ref: str) -> None:
        """BrokenHistory (or CorruptState) unless commit `oid`, its tree and every file of it
        are in the repository: a tip about to be shown, or built on.

        The caches know subject.json by commit id, so a tip whose objects git gc removed still
        reads from them; found broken here, it is moved out of them (into their quarantine, for
        `cleanup --repair`), and later snapshots read it from git, find it broken and skip it
        as a problem (a process that parsed it before keeps its copy in memory until it
        verifies that tip itself). A tip found whole is remembered: git gc never prunes what a
        ref reaches."""
        key = oid.encode()
        if key in self._whole:
            return
        try:
            tree = _git().whole(self.repo, oid, ref)
        except CorruptState:
            self.forget([key])
            raise
        self._remember_output(oid, _git().output_of(tree))  # a claim on it reads no object
        if len(self._whole) > 100_000:
            self._whole.clear()
        self._whole.add(key)

    def forget(self, oids: Sequence[bytes]) -> None:
        """Move the cached documents of commits found broken out of the caches (which then
        stay ones that can only miss) into their quarantine, kept for `cached`."""
        for key in oids:
            self._parsed.pop(key, None)
        self._reader.last = None  # the next snapshot reads every subject again
        self._lost_subjects.add(self._cache.forget(oids))
        self._lost_docs.add(self._doc_cache.forget(oids))
        dead = {k.decode() for k in oids}
        for doc_key in [k for k in self._docs if k[0] in dead]:
            self._docs.pop(doc_key, None)

    def cached(self, oid: str) -> bytes | None:
        """A cached copy of commit `oid`'s subject.json, also of a commit git no longer has
        (then perhaps the last copy there is), as one line of JSON; or None."""
        for cache in (self._cache, self._lost_subjects):
            cache.refresh()
            hit = cache.get(oid.encode())
            if hit is not None:
                return hit
        return None

    def cached_doc(self, oid: str, name: str) -> bytes | None:
        """A cached copy of file `name` (a JSON document: lock.json, control.json,
        entry.json) of commit `oid`, also of a commit git no longer has; or None."""
        for cache in (self._doc_cache, self._lost_docs):
            cache.refresh()
            known = parse_cached(cache.get(oid.encode()))
            if isinstance(known, dict) and name in known:
                return json.dumps(known[name]).encode()
        return None

    def chain(self, ref: str, tip: str, seen: dict[str, ChainLink]) -> list[ChainLink]:
        """`ref`'s first-parent chain from `tip` down, each commit checked whole; it ends at
        a root or at a missing commit (freq.store.git.chain; `seen` is shared across calls)."""
        links: list[ChainLink] = _git().chain(self.repo, ref, tip, seen)
        return links

    def read_doc(self, ref: str, name: str) -> tuple[bytes, str] | None:
        """(content of file `name` at the tip of `ref`, tip), or None when the ref is absent."""
        oid = self.read_ref(ref)
        if oid is None:
            return None
        return self.doc_at(oid, name, ref), oid

    def doc_at(self, oid: str, name: str, ref: str) -> bytes:
        """File `name` in commit `oid`'s tree (memoised and cached: commits are immutable)."""
        key = (oid, name)
        hit = self._docs.get(key)
        if hit is not None:
            return hit
        json_doc = name != refs.OUTPUT_FILE  # only JSON documents are cached
        known = parse_cached(self._doc_cache.get(oid.encode())) if json_doc else None
        if isinstance(known, dict) and name in known:
            data: bytes = json.dumps(known[name]).encode()
        else:
            data = self._file_at(oid, name, ref)
            if json_doc and parse_cached(data) is not None:  # the cache's reader reads it
                wrapped = {name: json.loads(data)}
                self._doc_cache.add([(oid.encode(), json.dumps(wrapped).encode())])
        if len(self._docs) > 4096:
            self._docs.clear()
        self._docs[key] = data
        return data

    def snapshot(self) -> Snapshot:
        """Every subject of every factory, with the tip each was read from (see
        freq.store.snapshot); unreadable refs are problems, not failures."""
        return self._reader.read()

    def read_subject(self, factory: str, name: str) -> tuple[Subject, str]:
        """One subject and its tip (whole: see `verify`); UnknownSubject, CorruptState or
        BrokenHistory."""
        ref = refs.subject_ref(factory, name)
        oid = self.read_ref(ref)
        if oid is None:
            raise UnknownSubject(
                f"no subject {name!r} in factory {factory!r}",
                hint=Hint(text="see", command=("status", factory)),
            )
        self.verify(oid, ref)  # shown or built on: the whole tip must be there
        return self.subject_at(oid, ref), oid

    def descends(self, tip: str, ancestor: str, *, limit: int = 2000) -> bool:
        """Whether commit `ancestor` is in `tip`'s history within `limit` commits, read
        in-process (a branch's recent history); False beyond or when unsure."""
        found: bool = _git().descends(self.repo, tip, ancestor, limit)
        return found

    def first_parent(self, oid: str, ref: str = "") -> str | None:
        """The first parent of commit `oid` (the previous event of `ref`'s append-only
        chain); BrokenHistory when `oid` is missing."""
        parent: str | None = _git().first_parent(self.repo, oid, ref)
        return parent

    def branch_tip(self, branch: str | None) -> str | None:
        """The commit a branch points at (None: whatever HEAD names); None if unborn."""
        name = "HEAD" if branch is None else branch
        if branch is not None and not branch.startswith("refs/"):
            name = f"refs/heads/{branch}"
        return self.read_ref(name)

    def changed_paths(self, old: str | None, new: str) -> list[str]:
        """Paths that differ between the trees of commits `old` and `new` (every path of
        `new` when `old` is None)."""
        paths: list[str] = _git().changed_paths(self.repo, old, new)
        return paths

    def folder_at(
        self, oid: str, folder: str, keep: Callable[[str], bool], ref: str = ""
    ) -> dict[str, bytes] | None:
        """The files directly in `folder` of commit `oid`'s tree whose names `keep`
        accepts, name → content (a branch's `.frequency/` as a commit holds it); None
        when the tree has no such folder."""
        files: dict[str, bytes] | None = _git().folder_at(self.repo, oid, folder, ref or oid, keep)
        return files

    def read_output(self, oid: str) -> bytes | None:
        """The output tail kept in commit `oid`'s tree, if any."""
        out: bytes | None = _git().read_output(self.repo, oid)
        return out

    def history(
        self,
        tips: dict[str, str],
        *,
        limit: int | None = None,
        broken: list[BrokenHistory] | None = None,
    ) -> Iterator[HistoryEntry]:
        """Commits reachable from `tips` (ref → oid), newest first; each commit once. A
        missing commit ends its line of history: BrokenHistory, or with `broken` (a list)
        noted there while the rest is walked."""
        if not tips:
            return iter(())
        entries: Iterator[HistoryEntry] = _git().history(self.repo, tips, limit, broken)
        return entries

    def messages(
        self, ref: str, tip: str, *, stop: str | None, broken: list[BrokenHistory]
    ) -> tuple[list[tuple[str, str]], bool]:
        """(commit id, message) of `ref`'s first-parent chain from `tip` down, newest first,
        up to `stop` (excluded; then True) or a root (False): the commits a ref gained
        since it was read at `stop`. A missing commit ends the walk and is noted in
        `broken`; CorruptState when the chain names an object that is no commit."""
        found: tuple[list[tuple[str, str]], bool] = _git().messages(
            self.repo, ref, tip, stop, broken
        )
        return found

    def prune_caches(self, *, dry_run: bool = False) -> tuple[int, int]:
        """Drop the cached documents of commits no ref under refs/frequency names now (a
        subject's earlier tips, archived subjects, released locks): (subject entries,
        other documents) dropped. What is dropped is only read from git again if needed."""
        subjects = {t.encode() for t in self.list_refs(refs.SUBJECTS).values()}
        docs = {
            t.encode()
            for prefix in (refs.LOCKS, refs.CONTROL)
            for t in self.list_refs(prefix).values()
        }
        return (
            self._cache.prune(subjects, dry_run=dry_run),
            self._doc_cache.prune(docs, dry_run=dry_run),
        )

    # ------------------------------------------------------------ logs

    def log_path(self, factory: str, subject: str, step: str, attempt: int, epoch: int) -> Path:
        """Where the full output of one attempt is kept (not in git: it can be large). The
        claim's epoch tells apart attempts of the same number: a step run again after its
        subject came back to the state, or after a usage limit gave its attempt back."""
        return self.state_dir / "logs" / factory / subject / f"{step}-{attempt}-{epoch}.log"


def _exists(names: list[str]) -> None:
    shown = ", ".join(sorted("/".join(c.split("/")[-2:]) for c in names)[:5])
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    raise SubjectExists(
        f"subject already exists: {shown}{more}",
        hint=Hint(text="nothing was added; leave those out, or pass", option="skip_existing"),
    )


def short(oid: str) -> str:
    """A commit id shortened for display."""
    return oid[:12]
