"""The run loop (SPEC §5): plan, repair, claim and launch, wait, collect; greedily.

Must not import click or subprocess. A Worker is one identity running factories against
one store: it plans from git alone (freq.planner over a snapshot and the cycle's facts),
lets Repair finish what others left half-done, claims through Claims, hands each attempt
to Attempts on a thread of its own, and renews every lease from a Heartbeat thread. It
plans again at once when a step ends or another local writer changes refs/frequency,
else after the next backoff or lease expiry, or the shortest poll_interval. When a budget
is configured, each cycle's plan is given what git records as spent in the budgets' windows
(freq.ledger, which reads only the commits written since the last cycle); a spent budget
waits until its window resets, which is a wake-up time like a backoff's end.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from freq import archival, layout, refs, upkeep
from freq.attempts import Attempts, StepOutcome
from freq.claims import Claims, Heartbeat, View
from freq.clock import Clock, Random, system_rng
from freq.costs import budgets
from freq.errors import (
    CorruptState,
    DiskFull,
    FreqError,
    RemoteRefused,
    RemoteUnreachable,
    WriteBlocked,
)
from freq.facts import gather
from freq.model import Config
from freq.planner import Plan, Start, plan, queues
from freq.repair import Repair
from freq.report import Progress, ProgressKind, Reporter
from freq.store import Store, problem_line

if TYPE_CHECKING:
    from freq.landing import Lander, Served
    from freq.ledger import Ledger
    from freq.workdirs import Workdirs
    from freq.worktrees import Holder, Pool

WAKE_SLICE = 0.01  # seconds between checks for a changed ref while waiting (idle CPU ~1%)
SWEEP_EVERY = 300.0  # seconds between sweeps for stale lock files
RETRY_SOON = timedelta(seconds=1)  # after a write had to wait: the next cycle comes this soon
LANDING_RECHECK = timedelta(seconds=2)  # a landing waiting for a clean checkout looks again
# seconds a cycle's ref listing may be the last one plus this worker's own writes, while no
# other Frequency process wrote (Store.keep_listings): a plain `git update-ref` is seen
# within this long
LISTING_TRUST = 1.0
REMOTE_POLL = timedelta(seconds=1)  # remote mode: the remote is fetched at least this often
REMOTE_FRESH = 0.5  # seconds: a remote that answered a push this recently needs no fetch
# remote mode: after the k-th failed contact in a row, the next is tried this much later
REMOTE_BACKOFF = 0.5  # seconds, doubled per failure
REMOTE_BACKOFF_MAX = 30.0


def remote_backoff(failures: int) -> float:
    """Seconds until the remote is tried again after `failures` failed contacts in a row."""
    doublings = min(max(0, failures - 1), 16)  # 2**16 halves of a second pass any cap
    return min(REMOTE_BACKOFF_MAX, REMOTE_BACKOFF * float(1 << doublings))


T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSummary:
    """What a `run` did. Every `finished` line is a success; every `failed` line is a
    failure, or (its detail says "result refused") a result refused because the claim was
    lost while the step ran (`lost` line), counted in `refused`; `lost_races` counts claims
    another worker took first (no line); `recovered` counts `recovered` lines."""

    succeeded: int = 0
    failed: int = 0
    lost_races: int = 0
    recovered: int = 0
    refused: int = 0
    released: int = 0  # attempts stopped by a kill (second Ctrl-C), their claims given back
    landed: int = 0  # merge-queue entries landed on their target branch
    rejected: int = 0  # merge-queue entries turned away (a conflict, a failed merge check)
    cycles: int = 0
    interrupted: bool = False
    # what interrupted the run: SIGINT or SIGTERM, or `parent` (the git that started it exited)
    stopped_by: str | None = None
    outcomes: tuple[StepOutcome, ...] = ()
    # remote mode: why the remote never answered during the run (it did nothing there)
    unreachable: str | None = None


@dataclass(slots=True)
class _Tally:
    """Counts as the loop goes; frozen into a RunSummary at the end."""

    succeeded: int = 0
    failed: int = 0
    lost_races: int = 0
    recovered: int = 0
    refused: int = 0
    released: int = 0
    landed: int = 0
    rejected: int = 0
    outcomes: list[StepOutcome] = field(default_factory=list)

    def served(self, out: Served) -> None:
        for done in out.done:
            if done.ok:
                self.landed += 1
            else:
                self.rejected += 1

    def add(self, out: StepOutcome) -> None:
        self.outcomes.append(out)
        self.released += out.released
        if not out.recorded:
            self.refused += 1
        elif out.ok:
            self.succeeded += 1
        else:
            self.failed += 1


_Inflight = dict[Future[list[StepOutcome]], tuple[str, str]]


class Worker:
    """Runs steps for one worker identity against one store."""

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        clock: Clock,
        worker: str,
        reporter: Reporter | None = None,
        rng: Random | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self.worker = worker
        self.reporter = reporter or Reporter()
        self.rng = rng or system_rng()
        self.claims = Claims(store, config, clock=clock, worker=worker, reporter=self.reporter)
        self.repair = Repair(
            store, config, clock=clock, worker=worker, reporter=self.reporter, rng=self.rng
        )
        ttl = config.settings.lease_ttl.total_seconds()
        store.lock_wait = min(store.lock_wait, ttl / 4)  # a lock wait never outlasts a lease
        self.heartbeat = Heartbeat(self.claims, interval=max(0.05, min(1.0, ttl / 10)))
        self.attempts = Attempts(
            store,
            self.claims,
            self.repair,
            clock=clock,
            reporter=self.reporter,
            rng=self.rng,
            heartbeat=self.heartbeat,
            workdirs=lambda: self.workdirs,
        )
        self.repair.in_flight = self.attempts.holds  # its own running attempts are not lost
        self.ledger: Ledger | None = None  # attempts' spend, read from git: only for budgets
        if budgets(config):
            from freq.ledger import Ledger

            self.ledger = Ledger(store)
        self.factories: tuple[str, ...] | None = None  # what `run` runs (None: every one)
        self.stopping = False
        self._said_draining = False
        self._discovered: dict[str, float] = {}  # factory -> when to discover again
        self._inflight: _Inflight = {}
        self._warned: set[str] = set()
        self._stalled: set[str] = set()  # trouble said this cycle or the last (said once)
        self._stalled_now: set[str] = set()
        self._swept_at: float | None = None
        self._serving: dict[Future[Served], str] = {}  # merge queues being served, by target
        self._blocked: dict[str, str] = {}  # target -> why its landings wait (a dirty checkout)
        self._recheck: dict[str, float] = {}  # target -> when to serve it again (monotonic)
        # remote mode: failed contacts in a row, and when (monotonic) to try again, with the
        # line that says why
        self._remote_failures = 0
        self._remote_retry: tuple[float, str] | None = None
        self._archive_refused = False  # the remote refused an archive pass (its update hook)
        self._gc: upkeep.Background | None = None  # git gc --auto started by the last sweep
        self._making = threading.RLock()  # the parts below, made on first need
        self._pool: Pool | None = None
        self._workdirs: Workdirs | None = None
        self._lander: Lander | None = None

    # The worktree pool, the work folders of isolated steps and the merge queue's lander are
    # made on first need, with their modules (worktrees, workdirs, landing, merges): a run
    # of plain steps never imports them, and a process's start-up is most of what a short
    # run costs (bench figure n). Two step threads may need them at once: one makes each.

    @property
    def pool(self) -> Pool:
        """The worktree pool of this repository on this machine."""
        with self._making:
            if self._pool is None:
                from freq.worktrees import Pool

                store = self.store
                self._pool = Pool(
                    Path(store.root),
                    Path(store.common_dir),
                    self.config.settings.worktrees,
                    clock=self.clock,
                )
            return self._pool

    @property
    def workdirs(self) -> Workdirs:
        """Where isolated steps run: pool worktrees on their branches."""
        with self._making:
            if self._workdirs is None:
                from freq import merges
                from freq.workdirs import Workdirs

                store, settings = self.store, self.config.settings
                root = Path(store.root)
                self._workdirs = Workdirs(
                    self.config,
                    self.pool,
                    store,
                    default=lambda: merges.default_branch(
                        root, store.mirror.name if store.mirror else settings.remote
                    ),
                )
            return self._workdirs

    @property
    def lander(self) -> Lander:
        """Serves merge queues: lands queued work on its target branch."""
        with self._making:
            if self._lander is None:
                from freq.landing import Lander

                self._lander = Lander(
                    self.store,
                    self.config,
                    self.pool,
                    clock=self.clock,
                    worker=self.worker,
                    reporter=self.reporter,
                    rng=self.rng,
                )
                self._lander.factories = self.factories
                self._lander.stopping = lambda: self.stopping
            return self._lander

    @property
    def running(self) -> int:
        """Attempts (chains, batches) running now."""
        return len(self._inflight)

    def stop(self) -> None:
        """Stop claiming; running steps finish and are recorded (first Ctrl-C). Safe to call
        from a signal handler: it only sets flags; the loop reports the drain."""
        self.stopping = True
        self.attempts.stopping = True

    def _say_draining(self) -> None:
        """Report once, as soon as the loop sees a stop, how many attempts are draining."""
        if self.stopping and not self._said_draining:
            self._said_draining = True
            self.reporter.emit(Progress(event=ProgressKind.DRAINING, detail=str(self.running)))

    def kill(self) -> None:
        """Stop running steps too: their process groups are killed and claims released."""
        self.stopping = True
        self.attempts.stopping = True
        self.attempts.cancel.set()

    def run(
        self,
        *,
        once: bool = False,
        until_idle: bool = False,
        factories: tuple[str, ...] | None = None,
        max_parallel: int | None = None,
        max_cycles: int = 10_000_000,
    ) -> RunSummary:
        """The greedy loop: plan, claim, start; plan again at once when a step ends or any
        local writer changes refs/frequency, else after the shortest poll_interval."""
        cap = max_parallel if max_parallel is not None else self.config.settings.max_parallel
        self.claims.max_parallel = cap
        self.store.keep_listings(LISTING_TRUST)
        self.attempts.chaining = not once  # --once runs one planning cycle's steps, no further
        chosen = [
            f for f in self.config.factories if factories is None or f.factory_id in factories
        ]
        poll = min((f.poll_interval for f in chosen), default=timedelta(seconds=30))
        if self.store.mirror is not None:  # others' writes come only through the remote
            poll = min(poll, REMOTE_POLL)
        self.factories = factories
        if self._lander is not None:  # made by an earlier run of this worker
            self._lander.factories = factories
        tally = _Tally()
        inflight = self._inflight
        cycles = 0
        with (
            self.heartbeat,
            ThreadPoolExecutor(max_workers=max(cap, 1), thread_name_prefix="freq-step") as pool,
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="freq-land") as landers,
        ):
            try:
                while cycles < max_cycles:
                    cycles += 1
                    token = self.store.change_token()
                    p = Plan()
                    moved = 0
                    if not self.stopping:
                        self._sweep()
                        if self._guarded(self._exchange, False):
                            p = self._guarded(lambda: self._plan(cap, factories), p)
                        moved = self._repair(p, tally)
                        self._guarded(lambda: self._archive(factories), None)
                        self._launch(p, pool, tally)
                        self._serve(p.landings, landers)
                    self._stalled, self._stalled_now = self._stalled_now, set()
                    if once:
                        while self._inflight or self._serving:  # in slices: a drain is said at once
                            self._say_draining()
                            self._collect(tally, timeout=WAKE_SLICE)
                        if not self.stopping:  # what this cycle's steps queued lands too
                            self._serve_queued(tally)
                        self._say_draining()
                        break
                    self._say_draining()
                    # waiting is not idle; a landing that waits for a person (a dirty
                    # checkout of its target) is
                    landing = set(p.landings) - set(self._blocked)
                    idle = until_idle and p.idle and not self._stalled and not landing
                    if not inflight and not self._serving and (self.stopping or idle):
                        if not self.stopping and self._discover(factories, force=True):
                            continue  # idle only until discovery finds more
                        break
                    if moved:
                        continue  # a recovery or a parking may have made work: plan again now
                    wake = p.next_wake
                    if self._stalled:  # a write had to wait: try again soon, not at poll
                        soon = self.clock.now() + RETRY_SOON
                        wake = soon if wake is None else min(wake, soon)
                    if self._recheck:  # a checkout may be clean by then: no ref says so
                        soon = self.clock.now() + LANDING_RECHECK
                        wake = soon if wake is None else min(wake, soon)
                    self._wait(tally, token, poll, wake)
            except KeyboardInterrupt:
                self.kill()
                self._collect(tally, timeout=None)
            finally:
                self._gc_auto(end=True)
        return RunSummary(
            landed=tally.landed,
            rejected=tally.rejected,
            succeeded=tally.succeeded,
            failed=tally.failed,
            lost_races=tally.lost_races,
            recovered=tally.recovered,
            refused=tally.refused,
            released=tally.released,
            cycles=cycles,
            interrupted=self.stopping,
            outcomes=tuple(tally.outcomes),
            unreachable=self._unreachable,
        )

    @property
    def _unreachable(self) -> str | None:
        """Remote mode: the one line to end a run with when the remote never answered."""
        mirror = self.store.mirror
        if mirror is None or mirror.seen_at is not None:
            return None
        return f"remote {mirror.name} could not be reached: nothing was claimed or pushed"

    def _exchange(self) -> bool:
        """Remote mode: fetch refs/frequency/* before planning (unless a push just showed
        nothing new), push what was recorded here while the remote was unreachable, and
        say once what both sides changed (`git freq sync` reports it)."""
        mirror = self.store.mirror
        if mirror is None or mirror.fresh(REMOTE_FRESH):
            return True
        mono = self.clock.monotonic()
        if self._remote_retry is not None and mono < self._remote_retry[0]:
            self._stalled_now.add(self._remote_retry[1])  # still away: not idle, no claims
            return False
        # what was pushed needs no word; a ref that moved meanwhile (lost) goes again at the
        # next exchange, after the refresh it forces
        try:
            found, _pushed, _lost, refused = mirror.exchange()
        except RemoteUnreachable as exc:
            self._remote_failures += 1
            line = f"{exc.message}; trying again"  # as _guarded says it (once)
            self._remote_retry = (mono + remote_backoff(self._remote_failures), line)
            raise
        self._remote_failures = 0
        self._remote_retry = None
        for line in refused:
            self._warn(f"remote {mirror.name} refused {line}")
        from freq import sync

        for r in sync.reconcile(self.store, found.diverged):
            if r.refused:
                self._warn(
                    f"{r.ref}: {r.refused} event(s) made here no longer apply on remote "
                    f"{mirror.name} ({r.reason}); kept at {r.kept}"
                )
        return True

    def _sweep(self) -> None:
        """Remove lock files killed writers left (ref and object locks nobody holds), and
        let git repack once packs or loose objects pile up (freq.upkeep, on a thread while
        the loop goes on; the run waits for it before it returns): when the loop starts,
        then every SWEEP_EVERY seconds (a lock that a write meets is cleared at once
        anyway; this catches the ones no write meets)."""
        now = self.clock.monotonic()
        if self._swept_at is not None and now - self._swept_at < SWEEP_EVERY:
            return
        self._swept_at = now
        self._sweep_worktrees()
        self._gc_auto()
        nothing: list[str] = []
        swept = self._guarded(self.store.sweep_locks, nothing)
        if swept:
            shown = ", ".join(swept[:3]) + (f" and {len(swept) - 3} more" if len(swept) > 3 else "")
            self.reporter.emit(
                Progress(event=ProgressKind.PROBLEM, detail=f"removed stale lock files: {shown}")
            )

    def _gc_auto(self, *, end: bool = False) -> None:
        """Start git's upkeep in the background (unless the last one still runs); with
        `end`, wait for the one running. A failure is said once, when it is known."""
        gc = self._gc
        if gc is not None and (end or not gc.running):
            failed = gc.wait()
            self._gc = None
            if failed is not None:
                self._warn(failed)
        if not end and self._gc is None:
            self._gc = upkeep.Background(self.store.root)

    def _sweep_worktrees(self) -> None:
        """Remove worktrees and branches of attempts that are gone (their uncommitted work
        salvaged first), as `cleanup` does, with the lock files' sweep: when the loop
        starts, then every SWEEP_EVERY seconds; said in one line each."""
        store = self.store
        pool = layout.pool_dir(
            Path(store.root), Path(store.common_dir), self.config.settings.worktrees.dir
        )
        if not pool.exists():
            return
        from freq import workdirs

        now = self.clock.now()
        snap = self._guarded(self.store.snapshot, None)
        if snap is None:
            return

        base = workdirs.live_holders(self.store, snap, now)

        def live(h: Holder) -> bool:  # this worker's own running attempts included
            return base(h) or self.attempts.holds(h.factory, h.subject, h.epoch)

        try:
            found = workdirs.sweep(self.store, self.config, self.pool, now=now, live=live)
        except (FreqError, OSError) as exc:
            line = exc.message if isinstance(exc, FreqError) else str(exc)
            self.reporter.emit(Progress(event=ProgressKind.PROBLEM, detail=f"cleanup: {line}"))
            return
        for s in found:
            self.reporter.emit(
                Progress(
                    event=ProgressKind.PROBLEM, detail=f"{s.action} {s.what} {s.name}: {s.detail}"
                )
            )

    def _guarded(self, write: Callable[[], T], instead: T) -> T:
        """Run one write of the cycle. A git lock that a live process holds, or a full disk,
        skips it this cycle (said once) rather than stopping the worker: the next cycle,
        soon, tries again, and a lock whose writer is gone is cleared by then."""
        try:
            return write()
        except WriteBlocked as exc:
            then = "waiting for space" if isinstance(exc, DiskFull) else "trying again"
            line = f"{exc.message}; {then}"
            if line not in self._stalled and line not in self._stalled_now:
                self.reporter.emit(Progress(event=ProgressKind.PROBLEM, detail=line))
            self._stalled_now.add(line)
            return instead

    def _repair(self, p: Plan, tally: _Tally) -> int:
        """Recover expired leases, park final failures, create what successes emitted."""
        moved = 0
        for exp in p.expired:
            ok = self._guarded(functools.partial(self.repair.recover, exp), False)
            tally.recovered += ok
            moved += ok
        for park in p.parks:
            parked = self._guarded(functools.partial(self.repair.park, park), None)
            moved += parked is not None
        for emit in p.emits:
            moved += self._guarded(
                functools.partial(self.repair.apply_emitted, emit.factory, emit.subject), 0
            )
        return moved

    def _discover(self, factories: tuple[str, ...] | None, *, force: bool = False) -> int:
        """Run `subjects.discover` of the factories this loop runs: at the first cycle, then
        at most once per factory's poll_interval (a discovery command may be slow), or now
        with `force`. How many subjects it added."""
        now = self.clock.monotonic()
        added = 0
        for fac in self.config.factories:
            if not fac.discover or (factories is not None and fac.factory_id not in factories):
                continue
            due = self._discovered.get(fac.factory_id)
            if due is not None and now < due and not force:
                continue
            self._discovered[fac.factory_id] = now + fac.poll_interval.total_seconds()
            from freq import discovery

            found = self._guarded(
                functools.partial(
                    discovery.discover, self.store, fac, clock=self.clock, worker=self.worker
                ),
                None,
            )
            if found is None:
                continue
            for item in (*found.refused, *found.errors):
                self.reporter.emit(
                    Progress(event=ProgressKind.DISCOVERY, factory=fac.factory_id, detail=item)
                )
            if found.added:
                added += len(found.added)
                self.reporter.emit(
                    Progress(
                        event=ProgressKind.DISCOVERED,
                        factory=fac.factory_id,
                        detail=f"{len(found.added)} new subject(s)",
                    )
                )
        return added

    def _plan(self, cap: int, factories: tuple[str, ...] | None) -> Plan:
        self._discover(factories)
        snap = self.store.snapshot()
        for problem in snap.problems:  # unreadable refs are skipped: say so once per run
            self._warn(problem)
        facts = gather(self.config, snap, store=self.store, clock=self.clock, factories=factories)
        now = self.clock.now()
        ends = self.claims.observe(snap, now)  # leases judged by this worker's monotonic clock
        spend = None
        if self.ledger is not None:
            spend = self.ledger.spend(self.config, now, tips=snap.tips)
            for problem in self.ledger.problems:
                self._warn(problem)
        self.claims.view = View(snap=snap, facts=facts, ends=ends, spend=spend)
        return plan(
            self.config,
            snap,
            now=now,
            max_parallel=cap,
            factories=factories,
            facts=facts,
            complete=False,
            ends=ends,
            spend=spend,
        )

    def _archive(self, factories: tuple[str, ...] | None) -> None:
        """Fold the subjects that finished `archive_after` ago into their archives (SPEC §3),
        from the snapshot this cycle planned with: at most one pass a cycle."""
        view = self.claims.view
        if view is None or self._archive_refused:
            return
        for factory, items in archival.due(
            self.config, view.snap, self.clock.now(), factories
        ).items():
            try:
                from freq import archiver

                done = archiver.fold(self.store, factory, items, at=self.clock.now())
            except RemoteRefused as exc:
                # a server hook that refuses deleting subject refs: not tried again this run
                self._archive_refused = True
                self._warn(f"archiving stopped for this run: {exc.message}")
                return
            into = refs.archive_ref(factory)
            if done.subjects:
                self.reporter.emit(
                    Progress(
                        event=ProgressKind.ARCHIVED,
                        factory=factory,
                        detail=f"{len(done.subjects)} finished subject(s) into {into}",
                    )
                )

    def _launch(self, p: Plan, pool: ThreadPoolExecutor, tally: _Tally) -> None:
        """Claim and start the plan's starts. Workers planning from the same state would all
        try the same subjects first; each begins at its own offset instead, so that
        several processes spread over the subjects rather than racing for each one."""
        inflight = self._inflight
        busy = set(inflight.values())
        starts = list(p.starts)
        if starts:
            k = self.claims.caps.offset % len(starts)
            starts = starts[k:] + starts[:k]
        lost = 0
        for start in starts:
            if (start.factory, start.subject) in busy or self.stopping:
                continue
            try:
                fut = self._guarded(functools.partial(self._claim, start, pool), None)
            except CorruptState as exc:
                # a broken history under this subject (the store dropped it from its caches,
                # so the next snapshot skips it as a problem): say so once, go on
                self._warn(problem_line(exc))
                continue
            if fut is not None:
                inflight[fut] = (start.factory, start.subject)
                lost = 0
                continue
            tally.lost_races += 1
            lost += 1
            if lost >= 2:
                break  # others work from the same plan: leave them the rest; re-plan

    def _claim(self, start: Start, pool: ThreadPoolExecutor) -> Future[list[StepOutcome]] | None:
        """Claim a planned start and submit its attempt (a batch's members together); None
        when the claim was lost."""
        if start.batch:
            members = self.claims.claim_batch(start)
            return pool.submit(self.attempts.execute_batch, members) if members else None
        lease = self.claims.claim(start)
        return pool.submit(self.attempts.execute_chain, lease) if lease is not None else None

    def _serve(self, targets: tuple[str, ...], landers: ThreadPoolExecutor) -> None:
        """Serve each target's merge queue on a thread of its own (one at a time per target
        in this process; the lander lock keeps other processes out)."""
        busy = set(self._serving.values())
        mono = self.clock.monotonic()
        for target in targets:
            if target in busy or self.stopping:
                continue
            if mono < self._recheck.get(target, 0.0):
                continue  # it waits for a person, or another process serves it: soon again
            self._serving[landers.submit(self.lander.serve, target)] = target

    def _serve_queued(self, tally: _Tally) -> None:
        """`--once`: land what the cycle's steps queued, here and now."""
        snap = self._guarded(self.store.snapshot, None)
        if snap is None:
            return
        for target in queues(snap, self.factories):
            self._served(tally, self._guarded(functools.partial(self.lander.serve, target), None))

    def _served(self, tally: _Tally, out: Served | None) -> None:
        if out is None:
            return
        tally.served(out)
        # a landing that waits for a person (a dirty checkout, a missing target), a git
        # failure, or a move that failed: looked at again after a pause, not at once, and
        # (but for another process serving it) not work that keeps `--until-idle` going
        waiting = out.waiting
        if out.busy or waiting is not None:
            self._recheck[out.target] = self.clock.monotonic() + LANDING_RECHECK.total_seconds()
        else:
            self._recheck.pop(out.target, None)
        if waiting is None:
            self._blocked.pop(out.target, None)
            return
        if self._blocked.get(out.target) != waiting:
            self.reporter.emit(Progress(event=ProgressKind.PROBLEM, detail=waiting))
        self._blocked[out.target] = waiting

    def _warn(self, problem: str) -> None:
        """A problem with the state, reported once per run."""
        if problem not in self._warned:
            self._warned.add(problem)
            self.reporter.emit(Progress(event=ProgressKind.PROBLEM, detail=problem))

    def _wait(
        self, tally: _Tally, token: tuple[int, ...], poll: timedelta, next_wake: datetime | None
    ) -> None:
        """Sleep until a step ends, refs/frequency changes, a backoff or lease ends, or the
        poll interval passes; whichever comes first (checked every WAKE_SLICE seconds)."""
        start = self.clock.now()
        deadline = start + poll
        if next_wake is not None:
            deadline = min(deadline, max(next_wake, start))
        while True:
            self._say_draining()
            if self._inflight or self._serving:
                if self._collect(tally, timeout=WAKE_SLICE):
                    return
            else:
                self.clock.sleep(WAKE_SLICE)
            if self.stopping and not self._inflight and not self._serving:
                return
            if not self.stopping and (
                self.store.others_wrote(token) or self.clock.now() >= deadline
            ):
                return

    def _collect(self, tally: _Tally, *, timeout: float | None) -> int:
        """Wait up to `timeout` (None: for all) and record finished steps; how many ended."""
        inflight = self._inflight
        serving = self._serving
        if not inflight and not serving:
            return 0
        every: list[Future[Any]] = [*inflight, *serving]
        done, _ = wait(
            every,
            timeout=timeout,
            return_when="ALL_COMPLETED" if timeout is None else FIRST_COMPLETED,
        )
        for fut in done:
            if fut in serving:
                del serving[fut]
                self._served(tally, self._landing_result(fut))
                continue
            del inflight[fut]
            for out in fut.result():
                tally.add(out)
        return len(done)

    def _landing_result(self, fut: Future[Served]) -> Served | None:
        """A serving's outcome; a write it could not make now (a git lock, a full disk) is
        said once and served again next cycle."""
        return self._guarded(fut.result, None)
