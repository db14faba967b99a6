"""The worktree pool: the git worktrees steps that change code run in, kept warm for reuse.

Must not import dulwich, click or subprocess: every git command goes through proc.git, the
setup command through proc.run; time comes from the injected Clock. It changes when the
way a step gets a checkout of its own changes, and for no other reason.

Slots are folders `<dir>/w<N>` (layout.default_pool_dir: outside the repository, since Claude Code
refuses to write any file under a `.git` folder), each with its record
`<dir>/w<N>.json` (holder, branch, base, setup fingerprint, times), written atomically.
Everything that picks or marks a slot, adds or removes a worktree, or writes a record runs
under an flock(2) on `<dir>/.pool.lock`, which the kernel drops when its process dies;
resets, setup and commits run outside it, since they touch only the slot's own worktree.
The user's checkout (the main worktree's HEAD, index and files) is never written: worktrees
are added from it with `git worktree add`, which leaves all three alone, and a branch the
user has checked out is refused instead of being moved under them.

The hot path is short on purpose (the pool's benchmark): a fresh slot is one `git worktree
add`; a reused one is `git checkout -f -B` plus `git clean`, and one `git ls-files` over the
`when_changed` globs to decide that setup can be skipped.

Longer than the house's ~500 lines: the admin lock, the slot records and the git commands
that act on them keep one invariant (one holder per slot, the user's checkout untouched),
easiest to check in one place; merging back belongs in a module of its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from freq import layout, proc
from freq.clock import Clock
from freq.errors import FreqError, WorktreeError
from freq.model import Setup, Worktrees
from freq.refs import iso, parse_iso

POLL = 0.2  # seconds between looks for a free slot when every slot is held
LOCK_FILE = ".pool.lock"
INCLUDE_FILE = ".worktreeinclude"  # gitignore syntax: ignored files a fresh slot gets
_SLOT = re.compile(r"w([1-9][0-9]*)")
_RECORD = re.compile(r"w([1-9][0-9]*)\.json")
_NO_ENV: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Holder:
    """Who uses a slot: one attempt of a step (a merge-queue check: step `merge:<branch>`,
    attempt 0, epoch 0)."""

    factory: str
    subject: str
    step: str
    attempt: int
    epoch: int
    worker: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkout:
    """A slot handed to one holder, until release()."""

    slot: str  # "w1", "w2", ...
    path: Path
    branch: str | None  # None: detached (merge checks)
    base: str  # the commit (as the caller named it) the checkout was made from
    fresh: bool  # created now, not reused
    setup: str  # "none" | "ran" | "skipped" (when_changed files unchanged)
    setup_ms: int = 0
    token: str = ""  # this acquisition's id: releasing a stale Checkout changes nothing


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotInfo:
    """One slot as `slots()` sees it."""

    slot: str
    path: Path
    holder: Holder | None
    branch: str | None  # while held: its branch; once released: the last one
    acquired_at: datetime | None
    released_at: datetime | None
    bytes: int  # disk use (st_blocks * 512, each inode once); 0 unless slots(sizes=True)


class SetupFailed(FreqError):
    """The `setup:` command failed in a slot; `.result` is how it ended. The slot was
    given back (its fingerprint forgotten, so the next holder runs setup again)."""

    code = "setup-failed"

    def __init__(self, slot: str, result: proc.ProcResult) -> None:
        lines = [ln.strip() for ln in result.tail.decode("utf-8", "replace").splitlines()]
        last = next((ln for ln in reversed(lines) if ln), "")[:300]
        said = f": {last}" if last else ""
        super().__init__(f"worktree {slot}: setup failed ({result.describe()}){said}")
        self.slot = slot
        self.result = result


class PoolBusy(FreqError):
    """Every slot is held, the pool is at its `max`, and the caller stopped waiting."""

    code = "pool-busy"
    retryable = True


@dataclass(frozen=True, slots=True, kw_only=True)
class _Record:
    """The record of one slot, `<dir>/w<N>.json`."""

    slot: str
    holder: Holder | None = None
    token: str | None = None
    branch: str | None = None
    base: str = ""
    fingerprint: str | None = None  # of the last setup that succeeded here
    acquired_at: datetime | None = None
    released_at: datetime | None = None
    created_at: datetime | None = None


_TIMES = ("acquired_at", "released_at", "created_at")


def _record_json(r: _Record) -> bytes:
    doc: dict[str, Any] = {f.name: getattr(r, f.name) for f in fields(r)}
    doc["holder"] = None if r.holder is None else asdict(r.holder)
    for key in _TIMES:
        doc[key] = None if doc[key] is None else iso(doc[key])
    return json.dumps(doc, indent=2).encode() + b"\n"


def _record_from(slot: str, raw: bytes) -> _Record:
    """The record in `raw`; one that cannot be read is a free slot that knows nothing (its
    next holder resets it and runs setup), never a slot blocked for good."""
    try:
        doc = json.loads(raw)
        h = doc["holder"]
        return _Record(
            slot=slot,
            holder=None if h is None else Holder(**{f.name: h[f.name] for f in fields(Holder)}),
            token=doc["token"],
            branch=doc["branch"],
            base=doc["base"],
            fingerprint=doc["fingerprint"],
            **{key: None if doc[key] is None else parse_iso(doc[key]) for key in _TIMES},
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return _Record(slot=slot)


def _choose(free: Sequence[_Record], branch: str | None) -> _Record:
    """The free slot to reuse: the one whose last branch is `branch` (a step continuing its
    own work), else the one released last (its caches are the warmest)."""
    if branch is not None:
        same = [r for r in free if r.branch == branch]
        if same:
            free = same
    return max(free, key=lambda r: (r.released_at is not None, r.released_at or datetime.min))


def _fail(what: str, res: proc.GitResult) -> WorktreeError:
    return WorktreeError(f"{what}: {res.why()}")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _disk_use(top: Path) -> int:
    """st_blocks * 512 of everything below `top` (symlinks not followed, hard links once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [os.fspath(top)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if (st.st_dev, st.st_ino) not in seen:
                        seen.add((st.st_dev, st.st_ino))
                        total += st.st_blocks * 512
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(entry.path)
        except OSError:
            continue
    return total


class Pool:
    """The worktree pool of one repository on this machine."""

    def __init__(self, repo_root: Path, common_dir: Path, settings: Worktrees, *, clock: Clock):
        self._root = Path(os.path.abspath(repo_root))
        self._common = Path(os.path.abspath(common_dir))
        self._settings = settings
        self._clock = clock
        self._dir = layout.pool_dir(self._root, self._common, settings.dir)
        self._made = False
        self._ident: Mapping[str, str] | None = None

    @property
    def dir(self) -> Path:
        """The folder the slots and their records live in."""
        return self._dir

    # ------------------------------------------------------------ taking and giving back

    def acquire(
        self,
        holder: Holder,
        *,
        base: str,
        branch: str | None,
        keep_branch: bool = False,
        setup: Setup | None = None,
        env: Mapping[str, str] = _NO_ENV,
        timeout: float | None = None,
        log_path: Path | None = None,
        go_on: Callable[[], bool] = lambda: True,
    ) -> Checkout:
        """A worktree for `holder`: on `branch` (made or reset at `base`; with
        `keep_branch`, an existing branch as it is), or detached at `base` when branch is
        None; then `setup` run in it unless its `when_changed` files are what the slot was
        last set up for. `base` is a commit id or a full ref name: it is resolved in the slot,
        where HEAD is the slot's own. Waits while every slot is held and go_on() says so
        (PoolBusy when it stops); SetupFailed when setup fails, WorktreeError when git does.
        Whatever fails, the slot is given back."""
        users = None if branch is None else self._users_checkout_of(branch)
        if users is not None:
            raise WorktreeError(f"branch {branch} is checked out in {users}; a step cannot use it")
        clean = setup is not None and setup.clean
        keep = keep_branch and branch is not None and self._branch_exists(branch)
        token = os.urandom(8).hex()
        record, fresh = self._take(holder, token, base=base, branch=branch, keep=keep, go_on=go_on)
        path = self._path(record.slot)
        try:
            if not fresh and not self._reset(
                path, base=base, branch=branch, keep=keep, clean=clean
            ):
                # its folder is gone or git cannot reset it (a killed git's index.lock):
                # made again, it is as good as new
                with self._admin():
                    self._drop_worktree(path)
                    self._add(path, base=base, branch=branch, keep=keep)
                fresh = True
            if fresh:
                self._copy_included(path)
            done, ms, fingerprint = self._set_up(
                record, path, fresh, setup, env, timeout, log_path, go_on
            )
            if fingerprint != record.fingerprint:
                with self._admin():
                    self._update(record.slot, token, fingerprint=fingerprint)
        except BaseException:
            with contextlib.suppress(WorktreeError):  # the first failure is the one to tell
                self._abandon(record.slot, path, token)
            raise
        return Checkout(
            slot=record.slot,
            path=path,
            branch=branch,
            base=base,
            fresh=fresh,
            setup=done,
            setup_ms=ms,
            token=token,
        )

    def release(self, checkout: Checkout) -> None:
        """Give the slot back: HEAD detached (the branch is free for others; files stay),
        holder cleared, the branch kept in the record as the slot's last. Releasing a
        Checkout whose slot was released or taken again since changes nothing."""
        record = self._read(checkout.slot)
        if record is None or record.token != checkout.token:
            return
        res = proc.git(["checkout", "-q", "--detach"], cwd=checkout.path)
        with self._admin():
            self._update(
                checkout.slot,
                checkout.token,
                holder=None,
                token=None,
                released_at=self._clock.now(),
            )
        if not res.ok:
            raise _fail(f"worktree {checkout.slot}: cannot detach HEAD", res)

    def _take(
        self,
        holder: Holder,
        token: str,
        *,
        base: str,
        branch: str | None,
        keep: bool,
        go_on: Callable[[], bool],
    ) -> tuple[_Record, bool]:
        """Mark a slot as the holder's, reused or made now (True); wait while all are held."""
        while True:
            with self._admin():
                records = self._records()
                now = self._clock.now()
                free = [r for r in records if r.holder is None]
                if free:
                    picked = replace(
                        _choose(free, branch),
                        holder=holder,
                        token=token,
                        branch=branch,
                        base=base,
                        acquired_at=now,
                    )
                    self._write(picked)
                    return picked, False
                if len(records) < self._settings.max:
                    slot = self._new_slot(records)
                    made = _Record(
                        slot=slot,
                        holder=holder,
                        token=token,
                        branch=branch,
                        base=base,
                        acquired_at=now,
                        created_at=now,
                    )
                    self._write(made)  # first: a crash after the add still knows the slot
                    try:
                        self._add(self._path(slot), base=base, branch=branch, keep=keep)
                    except BaseException:
                        self._unlink(slot)
                        raise
                    return made, True
            if not go_on():
                raise PoolBusy(
                    f"all {len(records)} worktrees of the pool are in use "
                    f"(worktrees: max {self._settings.max})"
                )
            self._clock.sleep(POLL)

    def _abandon(self, slot: str, path: Path, token: str) -> None:
        """Give back a slot whose acquire failed, forgetting its setup fingerprint."""
        with contextlib.suppress(OSError):
            if (path / ".git").exists():
                proc.git(["checkout", "-q", "--detach"], cwd=path)  # best effort
        with self._admin():
            self._update(
                slot,
                token,
                holder=None,
                token=None,
                fingerprint=None,
                released_at=self._clock.now(),
            )

    # ------------------------------------------------------------ git in a slot

    def _add(self, path: Path, *, base: str, branch: str | None, keep: bool) -> None:
        """`git worktree add` of a new slot (the caller holds the admin lock)."""
        where = os.fspath(path)
        if branch is None:
            args = ["worktree", "add", "--force", "--detach", where, base]
        elif keep:
            args = ["worktree", "add", "--force", where, branch]
        else:
            args = ["worktree", "add", "--force", "-B", branch, where, base]
        res = proc.git(args, cwd=self._root)
        if not res.ok:
            raise _fail(f"worktree {path.name}: git worktree add failed", res)

    def _reset(self, path: Path, *, base: str, branch: str | None, keep: bool, clean: bool) -> bool:
        """Tracked files to `base` (or the kept branch), untracked ones removed, ignored
        ones too when `clean`; False when the slot cannot be reset and must be made again."""
        if not (path / ".git").is_file():
            return False
        if branch is None:
            args = ["checkout", "-q", "-f", "--detach", base]
        elif keep:
            args = ["checkout", "-q", "--ignore-other-worktrees", "-f", branch]
        else:
            args = ["checkout", "-q", "--ignore-other-worktrees", "-f", "-B", branch, base]
        if not proc.git(args, cwd=path).ok:
            return False
        if not clean:
            # ignored files stay anyway, and only ignored ones were copied in; an exclude
            # here would also keep a previous holder's untracked, not-ignored leftovers
            return proc.git(["clean", "-fdq"], cwd=path).ok
        # what .worktreeinclude copied in when the slot was made stays (-e holds under -x)
        keep_included = [f"--exclude={p}" for p in self._included_patterns()]
        return proc.git(["clean", "-fdxq", *keep_included], cwd=path).ok

    def _included_patterns(self) -> list[str]:
        try:
            text = (self._root / INCLUDE_FILE).read_text(errors="replace")
        except OSError:  # none (the usual case), or unreadable: nothing to keep
            return []
        lines = (ln.rstrip("\r") for ln in text.splitlines())
        return [ln for ln in lines if ln.strip() and not ln.startswith("#")]

    def _set_up(
        self,
        record: _Record,
        path: Path,
        fresh: bool,
        setup: Setup | None,
        env: Mapping[str, str],
        timeout: float | None,
        log_path: Path | None,
        go_on: Callable[[], bool],
    ) -> tuple[str, int, str | None]:
        """(outcome, ms, fingerprint to record) of the slot's setup."""
        if setup is None or setup.run is None:
            wiped = fresh or (setup is not None and setup.clean)  # no ignored files left
            return "none", 0, None if wiped else record.fingerprint
        fingerprint = self._fingerprint(path, setup) if setup.when_changed else None
        if (
            fingerprint is not None
            and not fresh
            and not setup.clean
            and fingerprint == record.fingerprint
        ):
            return "skipped", 0, fingerprint
        result = proc.run(
            setup.run,
            cwd=path,
            env=proc.build_env(env),
            clock=self._clock,
            log_path=log_path,
            timeout=timeout,
            on_poll=go_on,
        )
        if not result.ok:
            raise SetupFailed(record.slot, result)
        return "ran", result.duration_ms, fingerprint

    def _fingerprint(self, path: Path, setup: Setup) -> str:
        """The blob ids of the tracked files matching `when_changed`, and the command."""
        specs = [f":(glob){g}" for g in setup.when_changed]
        res = proc.git(["ls-files", "-s", "-z", "--", *specs], cwd=path)
        if not res.ok:
            raise _fail(f"worktree {path.name}: cannot list the setup's when_changed files", res)
        command = setup.run if isinstance(setup.run, str) else "\0".join(setup.run or ())
        digest = hashlib.sha256(command.encode())
        digest.update(b"\0\0")
        digest.update(res.out)
        return digest.hexdigest()

    def _copy_included(self, path: Path) -> None:
        """Copy the main checkout's files matching .worktreeinclude that git ignores into a
        fresh slot, at the same paths with their modes; nothing is read or written through a
        symlink that leads out of the repository or the slot."""
        if not (self._root / INCLUDE_FILE).is_file():
            return
        res = proc.git(
            ["ls-files", "--others", "--ignored", f"--exclude-from={INCLUDE_FILE}", "-z"],
            cwd=self._root,
        )
        if not res.ok:
            raise _fail(f"cannot list the files {INCLUDE_FILE} names", res)
        candidates = [raw for raw in res.out.split(b"\0") if raw and not raw.endswith(b"/")]
        if not candidates:
            return
        # only files git ignores (Claude Code's rule): a copied file that is not ignored
        # would be committed by commit_leftovers' `git add -A` and land on the branch
        ignored = proc.git(
            ["check-ignore", "--stdin", "-z"], cwd=self._root, stdin=b"\0".join(candidates)
        )
        if ignored.code not in (0, 1):  # 1: none of them is ignored
            raise _fail(f"cannot tell which files {INCLUDE_FILE} names are ignored", ignored)
        root = os.path.realpath(self._root)
        slot = os.path.realpath(path)
        pool = os.path.realpath(self._dir)
        for raw in ignored.out.split(b"\0"):
            if raw:
                try:
                    _copy_one(os.fsdecode(raw), root, slot, pool)
                except OSError as exc:
                    raise WorktreeError(
                        f"worktree {path.name}: cannot copy {os.fsdecode(raw)} "
                        f"({INCLUDE_FILE}): {exc.strerror or exc}"
                    ) from None

    # ------------------------------------------------------------ commits

    def commit_leftovers(self, checkout: Checkout, message: str) -> str:
        """Commit whatever the holder left uncommitted (tracked changes and untracked files
        that are not ignored), without hooks; the commit at HEAD afterwards."""
        where = checkout.path
        # one process says both whether anything is left and what HEAD is: a step that
        # committed its work (or changed nothing) costs no more
        state = proc.git(["status", "--porcelain=v2", "--branch", "-z"], cwd=where)
        if not state.ok:
            raise _fail(f"worktree {checkout.slot}: git status failed", state)
        fields = state.out.split(b"\0")
        changes = [f for f in fields if f and not f.startswith(b"# ")]
        oid = next(
            (f[len(b"# branch.oid ") :] for f in fields if f.startswith(b"# branch.oid ")), b""
        )
        if not changes and len(oid) == 40:
            return oid.decode()
        res = proc.git(["add", "-A"], cwd=where)
        if not res.ok:
            raise _fail(f"worktree {checkout.slot}: git add failed", res)
        res = proc.git(["diff", "--cached", "--quiet"], cwd=where)
        if res.code == 1:
            res = proc.git(
                ["commit", "-q", "--no-verify", "-m", message], cwd=where, env=self._identity(where)
            )
            if not res.ok:
                raise _fail(f"worktree {checkout.slot}: git commit failed", res)
        elif not res.ok:
            raise _fail(f"worktree {checkout.slot}: cannot compare the index with HEAD", res)
        head = proc.git(["rev-parse", "HEAD"], cwd=where)
        if not head.ok:
            raise _fail(f"worktree {checkout.slot}: no commit at HEAD", head)
        return head.text()

    def salvage_commit(self, slot: str, message: str) -> str | None:
        """The slot's uncommitted work (tracked changes, untracked files not ignored) as a
        commit on its HEAD (parentless when HEAD is unborn); None when there is none. The
        slot's index, HEAD and files are left as they are; no ref points at the commit."""
        path = self._path(slot)
        if not (path / ".git").is_file():
            raise WorktreeError(f"worktree {slot}: no such slot in {self._dir}")
        res = proc.git(["rev-parse", "--git-path", "index"], cwd=path)
        if not res.ok:
            raise _fail(f"worktree {slot}: cannot find its index", res)
        index = path / res.text()
        self._ensure_dir()
        scratch = tempfile.mkdtemp(prefix=f".salvage-{slot}-", dir=self._dir)
        try:
            copy = os.path.join(scratch, "index")
            with contextlib.suppress(FileNotFoundError):
                shutil.copyfile(index, copy)
            env = {"GIT_INDEX_FILE": copy}
            res = proc.git(["add", "-A"], cwd=path, env=env)
            if not res.ok:
                raise _fail(f"worktree {slot}: git add failed", res)
            tree = proc.git(["write-tree"], cwd=path, env=env)
            if not tree.ok:
                raise _fail(f"worktree {slot}: git write-tree failed", tree)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        head = proc.git(["rev-parse", "-q", "--verify", "HEAD^{commit}"], cwd=path)
        parents: list[str] = []
        if head.ok:
            head_tree = proc.git(["rev-parse", head.text() + "^{tree}"], cwd=path)
            if head_tree.ok and head_tree.text() == tree.text():
                return None
            parents = ["-p", head.text()]
        made = proc.git(
            ["commit-tree", tree.text(), *parents, "-m", message],
            cwd=path,
            env=self._identity(path),
        )
        if not made.ok:
            raise _fail(f"worktree {slot}: git commit-tree failed", made)
        return made.text()

    def _identity(self, where: Path) -> Mapping[str, str]:
        """Nothing when git knows who commits; else Frequency on this host."""
        if self._ident is None:
            if proc.git(["var", "GIT_COMMITTER_IDENT"], cwd=where).ok:
                self._ident = {}
            else:
                email = f"freq@{proc.this_host()}"
                self._ident = {
                    "GIT_AUTHOR_NAME": "Frequency",
                    "GIT_AUTHOR_EMAIL": email,
                    "GIT_COMMITTER_NAME": "Frequency",
                    "GIT_COMMITTER_EMAIL": email,
                }
        return self._ident

    # ------------------------------------------------------------ looking and cleaning up

    def slots(self, *, sizes: bool = False) -> list[SlotInfo]:
        """Every slot with its holder, in slot order (a folder left without a record by a
        crash is listed too, as free); its disk use only with `sizes` (else 0): that walks
        every file of the slot (node_modules: seconds), too slow for the run loop."""
        records = {r.slot: r for r in self._records()}
        with contextlib.suppress(OSError), os.scandir(self._dir) as entries:
            for entry in entries:
                if _SLOT.fullmatch(entry.name) and entry.name not in records:
                    records[entry.name] = _Record(slot=entry.name)
        out = []
        for slot in sorted(records, key=lambda s: int(s[1:])):
            r = records[slot]
            path = self._path(slot)
            out.append(
                SlotInfo(
                    slot=slot,
                    path=path,
                    holder=r.holder,
                    branch=r.branch,
                    acquired_at=r.acquired_at,
                    released_at=r.released_at,
                    bytes=_disk_use(path) if sizes and path.is_dir() else 0,
                )
            )
        return out

    def disk_usage(self) -> int:
        """Bytes the pool's folder takes on disk (slots, records, lock)."""
        return _disk_use(self._dir) if self._dir.is_dir() else 0

    def remove(self, slot: str) -> None:
        """Delete a slot, held or not: its worktree (with whatever is in it) and record."""
        path = self._path(slot)
        with self._admin():
            self._drop_worktree(path)
            self._unlink(slot)

    def prune(self) -> None:
        """`git worktree prune`, and forget free slots whose folder is gone."""
        with self._admin():
            res = proc.git(["worktree", "prune"], cwd=self._root)
            if not res.ok:
                raise _fail("git worktree prune failed", res)
            for r in self._records():
                if r.holder is None and not os.path.lexists(self._path(r.slot)):
                    self._unlink(r.slot)

    def _drop_worktree(self, path: Path) -> None:
        """Remove a slot's worktree (the caller holds the admin lock)."""
        if not os.path.lexists(path):
            proc.git(["worktree", "prune"], cwd=self._root)
            return
        res = proc.git(
            ["worktree", "remove", "--force", "--force", os.fspath(path)], cwd=self._root
        )
        if res.ok:
            return
        shutil.rmtree(path, ignore_errors=True)  # not a worktree git knows, or half made
        pruned = proc.git(["worktree", "prune"], cwd=self._root)
        if os.path.lexists(path):
            raise _fail(f"worktree {path.name}: cannot remove {path}", res)
        if not pruned.ok:
            raise _fail("git worktree prune failed", pruned)

    # ------------------------------------------------------------ records and the lock

    def _path(self, slot: str) -> Path:
        if not _SLOT.fullmatch(slot):
            raise WorktreeError(f"{slot!r} is not a worktree slot (w1, w2, ...)")
        return self._dir / slot

    def _ensure_dir(self) -> None:
        if self._made:
            return
        try:
            os.makedirs(self._dir, exist_ok=True)
            inside = _inside(os.path.realpath(self._dir), os.path.realpath(self._root))
            in_git = _inside(os.path.realpath(self._dir), os.path.realpath(self._common))
            ignore = self._dir / ".gitignore"
            if inside and not in_git and not ignore.exists():
                # a pool inside the checkout must not show in the user's `git status`
                ignore.write_text("*\n")
        except OSError as exc:
            raise WorktreeError(
                f"cannot make the worktree pool folder {self._dir}: {exc.strerror or exc}"
            ) from None
        self._made = True

    @contextlib.contextmanager
    def _admin(self) -> Iterator[None]:
        """Hold the pool's admin lock (flock: blocking; gone with its process)."""
        self._ensure_dir()
        lock = self._dir / LOCK_FILE
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise WorktreeError(f"cannot open {lock}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # drops the flock

    def _records(self) -> list[_Record]:
        out = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self._dir) as entries:
            for entry in entries:
                if _RECORD.fullmatch(entry.name):
                    with contextlib.suppress(FileNotFoundError), open(entry.path, "rb") as f:
                        out.append(_record_from(entry.name[:-5], f.read()))
        return sorted(out, key=lambda r: int(r.slot[1:]))

    def _read(self, slot: str) -> _Record | None:
        self._path(slot)
        try:
            with open(self._dir / f"{slot}.json", "rb") as f:
                return _record_from(slot, f.read())
        except FileNotFoundError:
            return None

    def _new_slot(self, records: Sequence[_Record]) -> str:
        taken = {r.slot for r in records}
        n = 1
        while f"w{n}" in taken or os.path.lexists(self._dir / f"w{n}"):
            n += 1
        return f"w{n}"

    def _write(self, record: _Record) -> None:
        """Replace a slot's record atomically (the caller holds the admin lock)."""
        target = self._dir / f"{record.slot}.json"
        tmp = self._dir / f".{record.slot}.json.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(_record_json(record))
            os.replace(tmp, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise WorktreeError(f"cannot write {target}: {exc.strerror or exc}") from None

    def _update(self, slot: str, held: str, **changes: Any) -> None:
        """Change the record of a slot the acquisition `held` still holds (else nothing)."""
        record = self._read(slot)
        if record is not None and record.token == held:
            self._write(replace(record, **changes))

    def _unlink(self, slot: str) -> None:
        try:
            os.unlink(self._dir / f"{slot}.json")
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise WorktreeError(f"cannot remove the record of {slot}: {exc.strerror}") from None

    # ------------------------------------------------------------ the user's checkout

    def _users_checkout_of(self, branch: str) -> str | None:
        """The user's worktree (main or linked; not a slot of this pool, not one git lists
        as prunable since its folder is gone) that has `branch` checked out: resetting the
        branch (`-B`, with --force or --ignore-other-worktrees) would move its HEAD."""
        res = proc.git(["worktree", "list", "--porcelain", "-z"], cwd=self._root)
        if not res.ok:
            raise _fail("cannot list the repository's worktrees", res)
        pool = os.path.realpath(self._dir)
        ref = f"refs/heads/{branch}".encode()
        for entry in res.out.split(b"\0\0"):
            attrs = dict(f.partition(b" ")[::2] for f in entry.split(b"\0") if f)
            path = attrs.get(b"worktree")
            if path is None or attrs.get(b"branch") != ref or b"prunable" in attrs:
                continue
            where = os.fsdecode(path)
            if not _inside(os.path.realpath(where), pool):
                return where
        return None

    def _branch_exists(self, branch: str) -> bool:
        res = proc.git(
            ["rev-parse", "-q", "--verify", f"refs/heads/{branch}^{{commit}}"], cwd=self._root
        )
        return res.ok


def _copy_one(rel: str, root: str, slot: str, pool: str) -> None:
    """Copy `root/rel` to `slot/rel` (a file with its mode, or a symlink that stays inside
    the repository); an existing destination, or a path through a symlink, is left alone."""
    src = os.path.join(root, rel)
    dest = os.path.join(slot, rel)
    real_src = os.path.realpath(src)
    if _inside(real_src, pool) or not _inside(os.path.realpath(os.path.dirname(src)), root):
        return
    if not _inside(os.path.realpath(os.path.dirname(dest)), slot) or os.path.lexists(dest):
        return
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        if _inside(real_src, root):
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            os.symlink(os.readlink(src), dest)
        return
    if not stat.S_ISREG(st.st_mode):
        return
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    with (
        os.fdopen(os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as fin,
        os.fdopen(os.open(dest, flags, 0o600), "wb") as fout,
    ):
        shutil.copyfileobj(fin, fout)
        os.fchmod(fout.fileno(), stat.S_IMODE(st.st_mode))
