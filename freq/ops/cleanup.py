"""Housekeeping (`git freq cleanup`): a table of tasks, each reporting lines of what it found.

Must not import click, dulwich, subprocess or pexpect, and never prints: `cleanup` takes an
App and plain values and returns a CleanupResult. Each task looks after one kind of leftover
and returns a TaskReport; a new kind of housekeeping (stale git lock files, old worktrees,
dangling objects Frequency left) is one more function in TASKS:

    history   chains under refs/frequency/ that name a missing object (git gc --prune=now
              during a run): reported; with `repair`, each returned to its last intact state
              as a new commit (freq.chains)
    git-locks lock files killed writers left (refs, packed-refs, objects), removed once
              nobody holds them (freq.store.lockfiles)
    worktrees pool worktrees of attempts that are gone (older than their step's timeout
              plus a lease), their uncommitted work saved on a salvage ref first; freq/*
              branches no attempt needs; `git worktree prune` (freq.workdirs.sweep)
    refs      loose refs under refs/frequency/ piled up (LOOSE_PILE or more): packed by
              `git pack-refs --all`, git's own protocol (each loose ref is deleted under its
              lock, and only while it still holds the value packed), so a worker writing at
              the same time loses nothing
    objects   packs piled up (one per batch Frequency writes whole, such as each archive
              batch), or loose objects (estimated as git does), past the limits `git gc
              --auto` reads (the repository's gc.autoPackLimit and gc.auto; PACK_PILE and
              LOOSE_OBJECT_PILE when unset): repacked as `git gc` would, so that an object
              lookup, which tries every pack before the loose objects, does not grow with
              the months
    caches    entries of .git/frequency/cache/ for commits no ref names any more (earlier
              tips, archived subjects), which every process reads at start: dropped once
              CACHE_PILE of them pile up
    logs      log folders of subjects neither live nor archived (removed by hand), once a
              day untouched: removed

`dry_run` makes every task say what it would do and change nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from freq import chains, proc
from freq.errors import ConfigError, RefConflict
from freq.ops.app import App
from freq.runtime import Snapshot
from freq.store import ChainLink


@dataclass(frozen=True, slots=True, kw_only=True)
class Housekeeping:
    """How a cleanup runs: `repair` mends what is broken; `dry_run` changes nothing."""

    repair: bool = False
    dry_run: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainRow:
    """One broken chain, and what the cleanup did about it.

    `action`: `found` (reported; `--repair` would mend it), `would repair` (a dry run),
    `repaired`, `moved` (its ref moved during the repair: nothing was written; run again) or
    `not repairable` (`advice` says what to do)."""

    ref: str
    kind: str
    problem: str
    missing: tuple[str, ...]
    base: str | None  # the intact commit a repair builds on (None: a new root)
    lost: tuple[str, ...]  # commits a repair drops from the history, newest first
    action: str
    detail: str = ""  # what the repair does, in words
    commit: str | None = None  # the repaired ref's new tip
    advice: str = ""
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskReport:
    """What one housekeeping task found and did: lines to show, and how many problems it
    left (any makes `cleanup` fail, exit 1, so that a scheduled run is noticed)."""

    task: str
    lines: tuple[str, ...]
    left: int = 0
    chains: tuple[ChainRow, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CleanupResult:
    """Every task's report."""

    repair: bool
    dry_run: bool
    tasks: tuple[TaskReport, ...]
    left: int  # problems left over, over all tasks


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def history(app: App, how: Housekeeping) -> TaskReport:
    """Find chains that name a missing object; with `repair`, mend each by one CAS commit."""
    store = app.store
    seen: dict[str, ChainLink] = {}
    breaks, junk, walked = chains.find(store, seen)
    lines: list[str] = [f"{'broken':15} {line}; not a chain of commits" for line in junk]
    if not breaks:
        lines.append(
            f"history: {_plural(walked, 'ref')} under refs/frequency/ checked "
            f"({_plural(len(seen), 'commit')}), every chain whole"
        )
        return TaskReport(task="history", lines=tuple(lines), left=len(junk))
    if not how.dry_run:  # tips not whole: every next snapshot reads them from git, skips them
        store.forget([b.tip.encode() for b in breaks if not b.links[0].intact])
    snap = store.snapshot() if how.repair else None
    mender = chains.Mender(store, at=app.clock.now(), by=app.actor, dry_run=how.dry_run)
    rows: list[ChainRow] = []
    for brk in breaks:
        problem = brk.problem.message
        row = ChainRow(
            ref=brk.ref,
            kind=brk.kind,
            problem=problem,
            missing=brk.missing,
            base=brk.base,
            lost=tuple(link.oid for link in brk.lost),
            action="found",
        )
        lines.append(f"{'broken':15} {problem}")
        if snap is not None:
            row = _mend(mender, brk, snap, row, dry_run=how.dry_run)
            lines.append(_line(row))
            lines += [f"{'note':15} {n}" for n in row.notes]
        rows.append(row)
    left = len(junk) + sum(r.action != "repaired" for r in rows)
    if not how.repair:
        lines.append(
            f"{_plural(len(rows), 'broken chain')}: `git freq cleanup --repair` returns each to "
            "its last intact state as a new commit (add --dry-run to see how first)"
        )
    return TaskReport(task="history", lines=tuple(lines), left=left, chains=tuple(rows))


def _mend(
    mender: chains.Mender, brk: chains.Break, snap: Snapshot, row: ChainRow, *, dry_run: bool
) -> ChainRow:
    try:
        out = mender.mend(brk, snap)
    except RefConflict:
        return replace(row, action="moved")
    if not out.mended:
        return replace(row, action="not repairable", advice=out.advice)
    return replace(
        row,
        action="would repair" if dry_run else "repaired",
        detail=out.description,
        commit=out.commit,
        notes=out.notes,
    )


def _line(row: ChainRow) -> str:
    if row.action == "not repairable":
        return f"{row.action:15} {row.ref}: {row.advice}"
    if row.action == "moved":
        return (
            f"{'skipped':15} {row.ref}: it moved while being repaired, nothing was written; "
            "run `git freq cleanup --repair` again"
        )
    commit = f" (commit {row.commit[:12]})" if row.commit else ""
    return f"{row.action:15} {row.ref}: {row.detail}{commit}"


def git_locks(app: App, how: Housekeeping) -> TaskReport:
    """Remove lock files killed writers left (ref locks under refs/frequency/, packed-refs,
    object locks, temporary object files): each nobody holds an flock on, past its grace.
    Writers clear the ones they meet by themselves; this finds the ones none meets."""
    found = app.store.sweep_locks(remove=not how.dry_run)
    verb = "would remove" if how.dry_run else "removed"
    lines = [f"{verb:15} {path}: a lock file its writer left when it was killed" for path in found]
    return TaskReport(task="git-locks", lines=tuple(lines))  # nothing found: nothing to say


def worktrees(app: App, how: Housekeeping) -> TaskReport:
    """Stale worktrees (salvaged, then removed) and unneeded freq/* branches."""
    from freq import workdirs
    from freq.worktrees import Pool

    store = app.store
    now = app.clock.now()
    try:
        config = app.config
    except ConfigError as exc:
        # without the steps' timeouts no worktree can be judged stale: none is touched
        from freq.layout import default_pool_dir

        if not default_pool_dir(Path(store.common_dir)).exists():
            return TaskReport(task="worktrees", lines=())
        line = f"{'skipped':15} worktrees: the configuration does not load ({exc.message})"
        return TaskReport(task="worktrees", lines=(line,), left=1)
    pool = Pool(store.root, Path(store.common_dir), config.settings.worktrees, clock=app.clock)
    if not pool.dir.exists():
        return TaskReport(task="worktrees", lines=())
    snap = store.snapshot()

    live = workdirs.live_holders(store, snap, now)
    found = workdirs.sweep(store, config, pool, now=now, live=live, dry_run=how.dry_run)
    lines = [f"{s.action:15} {s.what} {s.name}: {s.detail}" for s in found]
    return TaskReport(task="worktrees", lines=tuple(lines))


LOOSE_PILE = 256  # loose refs under refs/frequency/ from which `cleanup` packs them


def pack_refs(app: App, how: Housekeeping) -> TaskReport:
    """Pack refs/frequency/* (with every ref, as `git gc` does) once loose ones pile up:
    each listing of the refs, and each push's advertisement, then reads one file."""
    loose = app.store.loose_refs()
    if loose < LOOSE_PILE:
        return TaskReport(task="refs", lines=())
    what = f"{_plural(loose, 'loose ref')} under refs/frequency/ into packed-refs"
    if how.dry_run:
        return TaskReport(task="refs", lines=(f"{'would pack':15} {what}",))
    done = proc.git(["pack-refs", "--all"], cwd=app.store.root)
    if not done.ok:
        line = f"{'not packed':15} {what}: git pack-refs failed ({done.why()})"
        return TaskReport(task="refs", lines=(line,), left=1)
    return TaskReport(task="refs", lines=(f"{'packed':15} {what}",))


# git's own defaults for `git gc --auto`'s limits, gc.autoPackLimit and gc.auto
PACK_PILE = 50
LOOSE_OBJECT_PILE = 6700
REPACK_TIMEOUT = 3600.0  # seconds: a full repack of a months-old repository takes minutes


def objects(app: App, how: Housekeeping) -> TaskReport:
    """Repack once packs or loose objects pile up, with git's `git gc` commands (README,
    Housekeeping: safe during a run), past the limits `git gc --auto` would judge them by
    (_limits): past its pack limit, every pack into one, with unreachable objects younger
    than two weeks kept loose, so that an object a worker wrote and has not referenced yet
    survives; else past its loose-object limit, the reachable ones into one new pack."""
    folder = Path(app.store.common_dir) / "objects"
    pack_limit, loose_limit = _limits(app.store.root)
    packs = _packs(folder / "pack")
    loose = _loose_estimate(folder)
    if 0 < pack_limit < packs:
        what = f"{_plural(packs, 'pack')} into one"
        args = ["repack", "-d", "-l", "-A", "--unpack-unreachable=2.weeks.ago", "-q"]
    elif loose_limit > 0 and loose // 256 > -(-loose_limit // 256):  # as git rounds
        what = f"about {_plural(loose, 'loose object')} into a pack"
        args = ["repack", "-d", "-l", "-q"]
    else:
        return TaskReport(task="objects", lines=())
    if how.dry_run:
        return TaskReport(task="objects", lines=(f"{'would repack':15} {what}",))
    done = proc.git(args, cwd=app.store.root, timeout=REPACK_TIMEOUT)
    if not done.ok:
        line = f"{'not repacked':15} {what}: git repack failed ({done.why()})"
        return TaskReport(task="objects", lines=(line,), left=1)
    return TaskReport(task="objects", lines=(f"{'repacked':15} {what}",))


def _limits(root: Path) -> tuple[int, int]:
    """(packs, loose objects) that `objects` lets pile up before it repacks: the
    repository's gc.autoPackLimit and gc.auto as `git gc --auto` reads them (git's defaults,
    PACK_PILE and LOOSE_OBJECT_PILE, when unset or unreadable); as in git, gc.auto at 0 or
    below turns both off, and gc.autoPackLimit at 0 or below the one on packs."""
    loose = _config_int(root, "gc.auto", LOOSE_OBJECT_PILE)
    if loose <= 0:
        return 0, 0
    return _config_int(root, "gc.autoPackLimit", PACK_PILE), loose


def _config_int(root: Path, key: str, default: int) -> int:
    """An integer git setting (`git config --type=int`, which reads 1k as 1024), or
    `default` when it is unset or not a number git reads."""
    got = proc.git(["config", "--type=int", "--get", key], cwd=root)
    try:
        return int(got.text()) if got.ok else default
    except ValueError:
        return default


def _packs(folder: Path) -> int:
    """Packs as git counts them for gc.autoPackLimit: indexed, and not kept by a .keep."""
    try:
        names = set(os.listdir(folder))
    except OSError:
        return 0
    return sum(
        1
        for n in names
        if n.endswith(".idx") and n[:-4] + ".pack" in names and n[:-4] + ".keep" not in names
    )


def _loose_estimate(folder: Path) -> int:
    """Loose objects as git estimates them for gc.auto: those in objects/17, times 256
    (git repacks once objects/17 holds more than gc.auto / 256, rounded up)."""
    try:
        names = os.listdir(folder / "17")
    except OSError:
        return 0
    hexdigits = frozenset("0123456789abcdef")
    return 256 * sum(1 for n in names if len(n) in (38, 62) and set(n) <= hexdigits)


def caches(app: App, how: Housekeeping) -> TaskReport:
    """Drop the cache entries (`.git/frequency/cache/`) of commits no ref names now: each
    process reads the whole cache file at start, so dead entries cost every start."""
    subjects, docs = app.store.prune_caches(dry_run=True)
    if subjects + docs < CACHE_PILE:
        return TaskReport(task="caches", lines=())
    if not how.dry_run:
        subjects, docs = app.store.prune_caches()
    verb = "would drop" if how.dry_run else "dropped"
    what = f"{_plural(subjects + docs, 'cached document')} of commits no ref names any more"
    return TaskReport(task="caches", lines=(f"{verb:15} {what}",))


CACHE_PILE = 1000  # dead cache entries from which `cleanup` drops them

LOG_GRACE = timedelta(days=1)  # a log folder this long untouched may be an orphan's


def logs(app: App, how: Housekeeping) -> TaskReport:
    """Remove the log folders of subjects that are neither live nor archived (removed by
    hand), once none of their files changed for LOG_GRACE: a subject being added now has
    its ref before its first log, and a day-old folder is no attempt's that runs."""
    import shutil

    root = app.store.state_dir / "logs"
    if not root.is_dir():
        return TaskReport(task="logs", lines=())
    snap = app.store.snapshot()
    cutoff = (app.clock.now() - LOG_GRACE).timestamp()
    lines: list[str] = []
    left = 0
    for fdir in sorted(p for p in root.iterdir() if p.is_dir()):
        factory = fdir.name
        names = sorted(p.name for p in fdir.iterdir() if p.is_dir())
        orphans = [n for n in names if (factory, n) not in snap.subjects]
        if not orphans:
            continue
        archived = app.store.archived_of(factory, orphans)
        for name in orphans:
            folder = fdir / name
            if name in archived or _touched_since(folder, cutoff):
                continue
            shown = f"logs/{factory}/{name}"
            if how.dry_run:
                lines.append(f"{'would remove':15} {shown}: no such subject, live or archived")
                continue
            try:
                shutil.rmtree(folder)
            except OSError as exc:
                lines.append(f"{'not removed':15} {shown}: {exc.strerror or exc}")
                left += 1
                continue
            lines.append(f"{'removed':15} {shown}: no such subject, live or archived")
    return TaskReport(task="logs", lines=tuple(lines), left=left)


def _touched_since(folder: Path, cutoff: float) -> bool:
    try:
        return any(p.stat().st_mtime >= cutoff for p in [folder, *folder.iterdir()])
    except OSError:
        return True  # unreadable, or changing now: leave it


# The housekeeping tasks, in the order they run: (name, task). Add new ones here.
TASKS: tuple[tuple[str, Callable[[App, Housekeeping], TaskReport]], ...] = (
    ("history", history),
    ("git-locks", git_locks),
    ("worktrees", worktrees),
    ("refs", pack_refs),
    ("objects", objects),
    ("caches", caches),
    ("logs", logs),
)


def cleanup(app: App, *, repair: bool = False, dry_run: bool = False) -> CleanupResult:
    """Run every housekeeping task (SPEC §6 `cleanup`): report what each found; with
    `repair`, mend broken chains; with `dry_run`, only say what would be done."""
    how = Housekeeping(repair=repair, dry_run=dry_run)
    reports = tuple(task(app, how) for _name, task in TASKS)
    return CleanupResult(
        repair=repair, dry_run=dry_run, tasks=reports, left=sum(r.left for r in reports)
    )
