"""The merge queue (SPEC §2 `merge`): worktree steps' branches land on their target, in turn.

Must not import click, dulwich or subprocess: git runs through freq.merges and
freq.worktrees, state is written through store by compare-and-swap. A worktree step that
succeeds does not move its subject; it queues the branch (transitions.queued). A Lander
serves one target branch's queue, first in first out with priority and ageing
(planner.queues), while it holds that target's lander lock, so one process at a time
moves each target on this machine; the branch move itself is a compare-and-swap too. For
each entry, or a batch of entries with the same check:

1. combine onto the tip without a worktree (freq.merges: rebase, merge or squash); a
   conflict fails that entry's attempt by its `on_conflict` and the others go on;
2. run `merge.check` on the combined tree in a pool worktree; a failing batch is bisected,
   so the culprit fails alone and the rest land;
3. write the intent (one commit on the target's queue ref naming the target's old and
   new tips and each entry's commit), then move the target (updating the user's checkout
   first when it has the target checked out and is clean, as git's
   receive.denyCurrentBranch=updateInstead does), then record each landing (one batch of
   subject refs) and close the intent. A crash between leaves an open intent, which the
   next lander settles first: each entry still queued whose commit the target contains
   is recorded, the others stay queued. Never lost, never landed twice.

In remote mode (freq.store.mirror) the remote's target is the truth: each round fetches it
and the entries' branches (pushed with their results), and step 3 is one atomic push that
moves the remote's target from the tip fetched, records every landing, closes the round in
the queue's history and deletes the landed branches, all or nothing, so no intent is
needed. A push that finds the target moved is a lost race, served again after the next
fetch. The user's local branch and checkout are theirs (`git pull` brings the landings);
refs/remotes/<remote>/<target> follows the push.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from freq import merges, proc, refs, transitions
from freq.clock import Clock, Random
from freq.errors import FreqError, MergeError, RefConflict, WriteBlocked
from freq.merges import Combined, Conflict
from freq.model import Config, OnConflict, Step
from freq.planner import queues
from freq.report import Progress, ProgressKind, Reporter
from freq.runtime import Snapshot, Subject
from freq.store import RefUpdate, Store
from freq.worktrees import Holder, Pool, SetupFailed

QUEUE = refs.ROOT + "queue/"  # one history per target: what landed, what was turned away
QUEUE_FILE = "queue.json"
_ROUNDS = 10_000  # a bound on one serving of a queue (each round lands or fails an entry)
GROUP = 32  # most entries without a check landed by one move of the target


def queue_ref(target: str) -> str:
    """The ref recording target branch `target`'s queue history."""
    return QUEUE + target


def branch_for(factory: str, subject: str, step: str) -> str:
    """The branch a worktree step's attempts commit on (SPEC §2)."""
    return f"freq/{factory}/{subject}/{step}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Landed:
    """What serving a queue did to one entry."""

    factory: str
    subject: str
    step: str
    attempt: int
    ok: bool  # landed; else turned away (conflict, failed check)
    detail: str


@dataclass(slots=True)
class Served:
    """One serving of a target's queue: what it did, and why it stopped early (None: the
    queue is empty, or another process is serving it: `busy`)."""

    target: str
    done: list[Landed] = field(default_factory=list)
    # why the serving stopped before the queue emptied, served again after a pause: the
    # user's checkout must be clean first, the target does not exist, git failed, the move
    # of the target failed, or the worker is stopping
    waiting: str | None = None
    busy: bool = False  # another process serves it now
    raced: bool = False  # remote mode: the remote moved first; served after the next fetch


class Lander:
    """Serves merge queues for one worker identity."""

    def __init__(
        self,
        store: Store,
        config: Config,
        pool: Pool,
        *,
        clock: Clock,
        worker: str,
        reporter: Reporter,
        rng: Random,
        factories: tuple[str, ...] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.pool = pool
        self.clock = clock
        self.worker = worker
        self.reporter = reporter
        self.rng = rng
        self.factories = factories
        self.root = Path(store.root)
        self._remote_branches: dict[str, str] = {}  # remote mode: as this round fetched them
        # the worker is stopping (Ctrl-C): no new round starts, a running check is stopped
        self.stopping: Callable[[], bool] = lambda: False

    def _emit(self, kind: ProgressKind, subj: Subject, detail: str) -> None:
        x = subj.landing
        self.reporter.emit(
            Progress(
                event=kind,
                factory=subj.factory,
                subject=subj.name,
                step=x.step if x else "",
                attempt=x.attempt if x else 0,
                detail=detail,
            )
        )

    def _done(self, out: Served, subj: Subject, *, ok: bool, detail: str) -> None:
        """What serving did to one entry (landed, or turned away): kept and said."""
        x = subj.landing
        assert x is not None
        out.done.append(
            Landed(
                factory=subj.factory,
                subject=subj.name,
                step=x.step,
                attempt=x.attempt,
                ok=ok,
                detail=detail,
            )
        )
        self._emit(ProgressKind.LANDED if ok else ProgressKind.REJECTED, subj, detail)

    # ------------------------------------------------------------ serving

    def serve(self, target: str) -> Served:
        """Land what `target`'s queue holds, entry by entry (or batch by batch), until it is
        empty or a landing must wait (the user's checkout of the target is not clean)."""
        out = Served(target=target)
        with self._lander_lock(target) as mine:
            if not mine:
                out.busy = True
                return out
            try:
                for _ in range(_ROUNDS):
                    if self.stopping() or not self._round(target, out):
                        break
                    if out.waiting is not None or out.raced:
                        break
            except WriteBlocked:
                raise  # the loop says it once and serves again soon
            except FreqError as exc:
                out.waiting = f"merge queue {target}: {exc.one_line()}"
            except OSError as exc:
                out.waiting = f"merge queue {target}: {exc.strerror or exc}"
        return out

    @contextlib.contextmanager
    def _lander_lock(self, target: str) -> Iterator[bool]:
        """This machine's lock on serving `target` (an flock: the kernel drops it if the
        process dies); False when another process serves it now."""
        path = _lock_path(self.store, target)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _round(self, target: str, out: Served) -> bool:
        """Land or turn away the queue's first entry (or batch); False when there is
        nothing more to do now."""
        snap = self.store.snapshot()
        entries = queues(snap, self.factories).get(target, [])
        if not entries:
            return False
        tips = {(s.factory, s.name): snap.tips[(s.factory, s.name)] for s in entries}
        if self.store.mirror is not None:
            tip, entries = self._fetch(target, entries)
            if not entries:
                return False
        else:
            # read in-process (store.read_ref: the loose ref, else packed-refs), not by a
            # `git rev-parse` per round: a branch names a commit, and the move is a CAS anyway
            tip = self.store.read_ref(f"refs/heads/{target}")
        if self._settle(target, snap, tip, out):
            return True
        if tip is None:
            out.waiting = (
                f"the target branch {target} does not exist; landings on it wait until it "
                "does (create it, or requeue the subjects elsewhere)"
            )
            return False
        head = entries[0]
        assert head.landing is not None
        step = self.config.step(head.factory, head.landing.step)
        if step is None or step.merge is None:
            self._turn_away(
                head,
                tips[(head.factory, head.name)],
                None,
                why=f"{head.factory}/{head.landing.step} is no longer a worktree step",
                detail="",
                out=out,
                terminal=True,
            )
            return True
        where = self._checkout(target)
        if isinstance(where, str):
            out.waiting = where
            return False
        # entries checked together: up to `merge.batch` with the same check; without a
        # check, every entry waiting (up to GROUP), combined one after the other exactly as
        # if landed one by one, but with one intent batch, one move of the target and one
        # record batch for all of them
        size = step.merge.batch if step.merge.check is not None else GROUP
        group = [head]
        for s in entries[1:]:
            if len(group) >= size:
                break
            other = self.config.step(s.factory, s.landing.step) if s.landing else None
            if (
                other is not None
                and other.merge is not None
                and other.merge.check == step.merge.check
            ):
                group.append(s)
        self._land_group(target, group, tips, tip, step, where, out)
        return True

    def _checkout(self, target: str) -> Path | str | None:
        if self.store.mirror is not None:
            return None  # the remote's target moves; the user's checkout is theirs
        return checkout_of(self.root, self.pool.dir, target)

    def _fetch(self, target: str, entries: list[Subject]) -> tuple[str | None, list[Subject]]:
        """Remote mode: the remote's tip of `target`, and the entries whose work this
        repository has (fetched from their branches on the remote, or made here; one kept
        while the remote was away and pushed without its branch lands from here)."""
        branches = [s.landing.branch for s in entries if s.landing]
        haves = [s.landing.base for s in entries if s.landing]
        got = self.store.remote_branches([target, *dict.fromkeys(branches)], haves=haves)
        self._remote_branches = got
        have = [s for s in entries if s.landing and self.store.has_commit(s.landing.commit)]
        return got.get(target), have

    # ------------------------------------------------------------ one group

    def _land_group(
        self,
        target: str,
        group: Sequence[Subject],
        tips: dict[tuple[str, str], str],
        old: str | None,
        step: Step,
        checkout: Path | None,
        out: Served,
    ) -> str | None:
        """Combine `group` onto `old`, check it, land it; a failing check bisects. The
        target's tip afterwards."""
        combined: list[tuple[Subject, Combined]] = []
        cur = old
        for s in group:
            x = s.landing
            assert x is not None
            entry_step = self.config.step(s.factory, x.step) or step
            merge = entry_step.merge
            assert merge is not None
            if cur is None:  # the target does not exist yet: the branch becomes it
                got: Combined | Conflict = Combined(
                    commit=x.commit, commits=(x.commit,), strategy=merge.strategy
                )
            else:
                try:
                    got = merges.combine(
                        self.root,
                        onto=cur,
                        branch_tip=x.commit,
                        strategy=merge.strategy,
                        message=f"{s.factory}/{s.name}: {x.step} (attempt {x.attempt})",
                        base=x.base,
                        # the target grew from the branch's base (it moves on by landings):
                        # the base is the merge base already, no throwaway commit needed
                        grown=self.store.descends(cur, x.base),
                    )
                except MergeError as exc:
                    # this entry cannot be combined at all (unrelated histories, its commit
                    # gone): it leaves the queue, the others go on
                    self._turn_away(
                        s,
                        tips[(s.factory, s.name)],
                        entry_step,
                        why=f"cannot combine with {target}: {exc.message}",
                        detail=exc.message,
                        out=out,
                        terminal=True,
                    )
                    continue
            if isinstance(got, Conflict):
                self._conflict(target, s, tips[(s.factory, s.name)], entry_step, got, out)
                continue
            combined.append((s, got))
            cur = got.commit
        if not combined or cur is None:
            return old
        if step.merge is not None and step.merge.check is not None:
            ok, tail, how = self._check(target, step, [s for s, _ in combined], cur)
            if self.stopping():
                out.waiting = "stopped during a merge check; nothing landed"
                return old
            if not ok:
                if len(combined) == 1:
                    s = combined[0][0]
                    self._turn_away(
                        s,
                        tips[(s.factory, s.name)],
                        step,
                        why=f"merge check failed on {target} ({how})",
                        detail=tail,
                        out=out,
                    )
                    return old
                half = len(combined) // 2
                first = [s for s, _ in combined[:half]]
                rest = [s for s, _ in combined[half:]]
                # the first half lands (or is bisected further), then the rest onto the
                # new tip: their subjects' tips are untouched by the first half's writes
                tip = self._land_group(target, first, tips, old, step, checkout, out)
                return self._land_group(target, rest, tips, tip, step, checkout, out)
        return self._move(target, combined, tips, old, cur, checkout, out)

    def _check(
        self, target: str, step: Step, group: Sequence[Subject], commit: str
    ) -> tuple[bool, str, str]:
        """Run the step's `merge.check` on `commit` in a pool worktree (after its setup):
        (passed, output tail, how it ended)."""
        merge = step.merge
        assert merge is not None and merge.check is not None
        first = group[0]
        holder = Holder(
            factory=first.factory,
            subject=first.name,
            step=f"merge:{target}",
            attempt=0,
            epoch=0,
            worker=self.worker,
        )
        stamp = self.clock.now().strftime("%Y%m%dT%H%M%S%f")
        logs = self.store.state_dir / "logs" / "queue" / target.replace("/", "%2F")
        logs.mkdir(parents=True, exist_ok=True)
        env = {
            "FREQ_REPO": str(self.root),
            "FREQ_TARGET": target,
            "FREQ_SUBJECTS": "\n".join(f"{s.factory}/{s.name}" for s in group),
        }
        timeout = step.timeout.total_seconds() if step.timeout else None
        try:
            co = self.pool.acquire(
                holder,
                base=commit,
                branch=None,
                setup=step.setup,
                env=env,
                timeout=timeout,
                log_path=logs / f"{stamp}.setup.log",
            )
        except SetupFailed as exc:
            res = exc.result
            return False, res.tail.decode("utf-8", "replace"), f"setup {res.describe()}"
        try:
            res = proc.run(
                merge.check,
                cwd=co.path,
                env=proc.build_env({**env, "FREQ_WORKDIR": str(co.path)}),
                clock=self.clock,
                log_path=logs / f"{stamp}.log",
                timeout=timeout,
                on_poll=lambda: not self.stopping(),
            )
        finally:
            self.pool.release(co)
        return res.ok, res.tail.decode("utf-8", "replace"), res.describe()

    # ------------------------------------------------------------ moving the target

    def _move(
        self,
        target: str,
        combined: Sequence[tuple[Subject, Combined]],
        tips: dict[tuple[str, str], str],
        old: str | None,
        new: str,
        checkout: Path | None,
        out: Served,
    ) -> str | None:
        """The intent (one commit on the queue's ref), then the target (and the user's
        checkout of it), then the subjects' records."""
        entries = [
            {
                "factory": s.factory,
                "subject": s.name,
                "tip": tips[(s.factory, s.name)],
                "commit": got.commit,
            }
            for s, got in combined
        ]
        names = ", ".join(f"{s.factory}/{s.name}" for s, _ in combined)
        if self.store.mirror is not None:
            return self._push_landing(target, combined, tips, old, new, names, out)
        # the user's checkout as it is now (a check may have run for minutes: they may have
        # switched branches or edited files meanwhile)
        where = self._checkout(target)
        if isinstance(where, str):
            out.waiting = where
            return old
        checkout = where
        intent = self._history(
            target,
            f"{target}: landing {len(combined)} ({names})",
            {
                "event": "landing",
                "old": old,
                "new": new,
                "entries": entries,
                "checkout": str(checkout) if checkout is not None else None,
            },
            must=True,
        )
        if intent is None:
            return old  # another lander wrote first: the next round reads what it did
        why: str | None = None
        moved_checkout = False
        if checkout is not None and old is not None:
            why = merges.update_checkout(checkout, old, new)
            moved_checkout = why is None
            if why is not None:
                why = f"{target} is checked out at {checkout} and cannot follow the landing: {why}"
                out.waiting = why
        if why is None:
            try:
                ok = merges.move_branch(self.root, target, new, old, message=f"freq: land {names}")
            except (FreqError, OSError) as exc:
                ok = False
                why = exc.message if isinstance(exc, FreqError) else str(exc)
            if not ok:
                if moved_checkout and checkout is not None and old is not None:
                    merges.update_checkout(checkout, new, old)
                why = why or f"{target} moved while landing; serving again"
        if why is not None:
            self._history(
                target, f"{target}: landing given up: {why}", {"event": "abandoned", "why": why}
            )
            if out.waiting is None:
                out.waiting = why  # served again after a pause, not at once
            return self.store.read_ref(f"refs/heads/{target}")
        self._record(
            target, [(s, tips[(s.factory, s.name)], got.commit) for s, got in combined], out
        )
        return new

    def _push_landing(
        self,
        target: str,
        combined: Sequence[tuple[Subject, Combined]],
        tips: dict[tuple[str, str], str],
        old: str | None,
        new: str,
        names: str,
        out: Served,
    ) -> str | None:
        """Remote mode: one atomic push moves the remote's target from `old` to `new`,
        records every landing, adds the round to the queue's history and deletes the
        landed branches; a lost race changes nothing (served again after a fetch)."""
        now = self.clock.now()
        done = [(s, tips[(s.factory, s.name)], got.commit) for s, got in combined]
        batch = self._landed(done, now)
        lines = [_entry_line(s, commit) for s, _, commit in done]
        ref = queue_ref(target)
        at = self.store.read_ref(ref)
        raw = _queue_doc({"event": "landed", "entries": lines, "tip": new, "old": old}, now)
        message = f"{target}: landed {len(combined)} ({names})\n"
        batch.insert(
            0,
            RefUpdate(
                ref, self.store.prepare_doc({QUEUE_FILE: raw}, message, at=now, parent=at), at
            ),
        )
        there = self._remote_branches
        also = [RefUpdate(f"refs/heads/{target}", new, old)]
        also += [
            RefUpdate(f"refs/heads/{s.landing.branch}", None, s.landing.commit)
            for s, _ in combined
            if s.landing and there.get(s.landing.branch) == s.landing.commit
        ]
        try:
            self.store.update(batch, also=also)
        except RefConflict:
            for u in batch:
                self.store.discard(u.new or "")
            out.raced = True
            return old
        self.store.track(target, new, old)
        here = [(s.landing.branch, s.landing.commit) for s, _ in combined if s.landing]
        _delete_branches(self.root, [(b, c) for b, c in here if self.store.branch_tip(b) == c])
        for s, got in combined:
            self._done(out, s, ok=True, detail=f"landed on {target} as {got.commit[:12]}")
        return new

    def _record(
        self,
        target: str,
        done: Sequence[tuple[Subject, str, str]],
        out: Served,
        *,
        reason: str | None = None,
    ) -> None:
        """The target holds each entry's work: record the transitions (one batch; an entry
        someone moved meanwhile keeps their move), drop the branches, and close the intent
        in the queue's history."""
        batch = self._landed(done, self.clock.now(), reason=reason)
        changes = [(subj, commit) for subj, _, commit in done]
        try:
            self.store.update(batch)
        except RefConflict:
            changes = self._one_by_one(batch, changes)
        gone = [(s.landing.branch, s.landing.commit) for s, _ in changes if s.landing]
        _delete_branches(self.root, gone)
        lines = []
        for subj, commit in changes:
            self._done(out, subj, ok=True, detail=f"landed on {target} as {commit[:12]}")
            lines.append(_entry_line(subj, commit))
        names = ", ".join(f"{s.factory}/{s.name}" for s, _ in changes)
        self._history(
            target,
            f"{target}: landed {len(changes)} ({names})",
            {"event": "landed", "entries": lines, "tip": done[-1][2] if done else None},
        )

    def _landed(
        self, done: Sequence[tuple[Subject, str, str]], now: datetime, *, reason: str | None = None
    ) -> list[RefUpdate]:
        """The subject ref updates that record each (subject, tip, commit) as landed."""
        batch = []
        for subj, tip, commit in done:
            change = transitions.landed(
                subj, commit=commit, at=now, worker=self.worker, reason=reason
            )
            new = self.store.prepare(change.subject, change.event, parent=tip)
            batch.append(RefUpdate(refs.subject_ref(subj.factory, subj.name), new, tip))
        return batch

    def _one_by_one(
        self, batch: Sequence[RefUpdate], changes: list[tuple[Subject, str]]
    ) -> list[tuple[Subject, str]]:
        """A subject of the batch moved since it was read (a person's move, a requeue): the
        others are recorded each on its own; the moved one keeps its move (its work is on
        the target all the same)."""
        kept = []
        for update, change in zip(batch, changes, strict=True):
            try:
                self.store.update([update])
            except RefConflict:
                self.store.discard(update.new or "")
                continue
            kept.append(change)
        return kept

    def _settle(self, target: str, snap: Snapshot, tip: str | None, out: Served) -> bool:
        """Finish what a lander that stopped left: an intent on the queue's ref with no
        record after it. Each entry whose commit the target contains, and whose subject
        still waits with that landing, is recorded; the rest stay queued. True when there
        was one."""
        ref = queue_ref(target)
        found = self.store.read_doc(ref, QUEUE_FILE)
        if found is None:
            return False
        try:
            doc = json.loads(found[0])
        except ValueError:
            return False
        if not isinstance(doc, dict) or doc.get("event") != "landing":
            return False
        done: list[tuple[Subject, str, str]] = []
        waiting = 0
        for e in doc.get("entries") or ():
            if not isinstance(e, dict):
                continue
            key = (str(e.get("factory")), str(e.get("subject")))
            subj = snap.subjects.get(key)
            commit = str(e.get("commit"))
            x = subj.landing if subj is not None else None
            if subj is None or x is None or x.target != target:
                continue  # recorded already, or moved on by someone
            waiting += 1
            if tip is not None and merges.is_ancestor(self.root, commit, tip):
                done.append((subj, snap.tips[key], commit))
        if done:
            self._record(
                target,
                done,
                out,
                reason="the lander that moved the target stopped before recording it",
            )
        elif waiting:
            why = "the target never moved to it"
            self._revert_checkout(target, doc)
            self._history(target, f"{target}: landing given up: {why}", {"event": "abandoned"})
        else:
            why = "its entries were recorded already"
            self._history(target, f"{target}: landing settled: {why}", {"event": "settled"})
        return True

    def _revert_checkout(self, target: str, doc: dict[str, object]) -> None:
        """A lander that updated the user's checkout and stopped before moving the target:
        their tree and index go back to the target's tip, if they are still exactly as it
        left them (HEAD on the target at its old tip, tree and index at the new one)."""
        where, old, new = doc.get("checkout"), doc.get("old"), doc.get("new")
        if not isinstance(where, str) or not isinstance(old, str) or not isinstance(new, str):
            return
        path = Path(where)
        if path not in merges.worktrees_on(self.root, target):
            return
        if merges.rev(path, "HEAD") != old:
            return
        merges.update_checkout(path, new, old)  # refuses, changing nothing, unless at new

    # ------------------------------------------------------------ turning away

    def _conflict(
        self, target: str, s: Subject, tip: str, step: Step, got: Conflict, out: Served
    ) -> None:
        merge = step.merge
        assert merge is not None
        paths = got.paths
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        why = f"merge conflict on {target} in {shown or 'the tree'}"
        err = s.last_error
        resolved_before = (
            err is not None
            and bool(err.conflict)
            and err.step == (s.landing.step if s.landing else "")
        )
        mode = merge.on_conflict
        self._turn_away(
            s,
            tip,
            step,
            why=why,
            detail=got.detail,
            out=out,
            conflict=paths,
            terminal=mode is OnConflict.TERMINAL or (mode is OnConflict.AGENT and resolved_before),
            at_once=mode is OnConflict.AGENT,
        )

    def _turn_away(
        self,
        s: Subject,
        tip: str,
        step: Step | None,
        *,
        why: str,
        detail: str,
        out: Served,
        conflict: tuple[str, ...] = (),
        terminal: bool = False,
        at_once: bool = False,
    ) -> None:
        """The entry leaves the queue as a failure of the attempt that made it."""
        x = s.landing
        assert x is not None
        base_step = step or Step(id=x.step, from_states=(s.state,), to_state=x.to_state)
        change = transitions.land_failed(
            s,
            base_step,
            why=why,
            detail=detail,
            conflict=conflict,
            terminal=terminal or step is None,
            at_once=at_once,
            at=self.clock.now(),
            worker=self.worker,
            rng=self.rng,
        )
        try:
            self.store.advance(
                refs.subject_ref(s.factory, s.name),
                change.subject,
                change.event,
                expected=tip,
                output=(detail or why).encode(),
            )
        except (RefConflict, WriteBlocked):
            return
        err = change.subject.last_error
        assert err is not None
        then = "final" if err.final else ("retried at once" if at_once else "retried after backoff")
        self._done(out, s, ok=False, detail=f"{why}; {then}")
        self._history(
            x.target,
            f"{x.target}: turned away {s.factory}/{s.name} {x.step} attempt {x.attempt}: {why}",
            {
                "event": "rejected",
                "entry": f"{s.factory}/{s.name}",
                "why": why,
                "paths": list(conflict),
            },
        )

    # ------------------------------------------------------------ history

    def _history(
        self, target: str, message: str, doc: dict[str, object], *, must: bool = False
    ) -> str | None:
        """One commit on the target's queue history ref; its id. `must` (an intent): only
        on the tip just read, None when another lander wrote meanwhile; otherwise best
        effort (the subjects' own histories hold the same facts)."""
        ref = queue_ref(target)
        raw = _queue_doc(doc, self.clock.now())
        for _ in range(1 if must else 3):
            tip = self.store.read_ref(ref)
            try:
                return self.store.write_doc(
                    ref, {QUEUE_FILE: raw}, message + "\n", at=self.clock.now(), expected=tip
                )
            except RefConflict:
                continue
            except WriteBlocked:
                if must:
                    raise
                return None
        return None


def _queue_doc(doc: dict[str, object], at: datetime) -> bytes:
    """queue.json of one commit of a queue's history."""
    return (json.dumps({**doc, "at": refs.iso(at)}, sort_keys=True, indent=1) + "\n").encode()


def _entry_line(subj: Subject, commit: str) -> str:
    """One landed entry, as the queue's history lists it."""
    x = subj.landing
    assert x is not None
    return f"{subj.factory}/{subj.name} {x.step} attempt {x.attempt} -> {commit}"


def _lock_path(store: Store, target: str) -> Path:
    """The lander lock of `target` on this machine (a branch's `/` kept out of the name)."""
    return store.state_dir / "queue" / (target.replace("/", "%2F") + ".lock")


def serving(store: Store, target: str) -> bool:
    """Whether some process on this machine serves `target`'s queue now (holds its lander
    lock): a merge check's worktree is in use while it does."""
    try:
        fd = os.open(_lock_path(store, target), os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a lock this probe took
    return False


def checkout_of(root: Path, pool: Path, target: str) -> Path | str | None:
    """The user's worktree that has `target` checked out (its tree and index move with a
    landing), None when none has, or why landings must wait: that checkout is not clean
    (git's receive.denyCurrentBranch=updateInstead rule)."""
    inside = pool.resolve()
    for wt in merges.worktrees_on(root, target):
        if wt.resolve().is_relative_to(inside):
            continue
        why = merges.dirty(wt)
        if why is not None:
            return (
                f"{target} is checked out at {wt} and {why}; landings on {target} wait "
                "until it is clean (commit or stash), as git's updateInstead does"
            )
        return wt
    return None


def _delete_branches(root: Path, branches: Sequence[tuple[str, str]]) -> None:
    """Drop landed steps' branches (one git process), each only if it is still where its
    step left it: a branch moved since is someone's, left for `cleanup`."""
    if not branches:
        return
    lines = "".join(f"delete refs/heads/{b} {old}\n" for b, old in branches)
    res = proc.git(["update-ref", "--stdin"], cwd=root, stdin=lines.encode())
    if not res.ok and len(branches) > 1:  # one moved: the rest go one by one
        for b, old in branches:
            proc.git(["update-ref", "-d", f"refs/heads/{b}", old], cwd=root)
