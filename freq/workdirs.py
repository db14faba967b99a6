"""Where a worktree step's attempt runs (SPEC §2 `isolation: worktree`), and what it leaves.

Must not import click, dulwich or subprocess: git runs through freq.proc (freq.worktrees,
freq.merges). An attempt of a worktree step gets a pool worktree (freq.worktrees) on its
branch `freq/<factory>/<subject>/<step>`, made from the tip of its target branch; it runs
there with FREQ_WORKDIR naming it; what it changed (its commits, and anything it left
uncommitted, committed for it) is the Work that joins the target's merge queue
(freq/landing.py). The attempt after a conflict with `on_conflict: agent` continues the
branch instead, with the target merged into it and the conflict as the agent's prompt.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from freq import merges, proc, refs
from freq.classify import Hint
from freq.errors import FreqError, RefConflict
from freq.landing import branch_for, serving
from freq.model import Config, FailureKind, OnConflict, Step
from freq.runners import StepRequest, StepResult
from freq.runtime import Claim, Snapshot, Subject
from freq.store import Store
from freq.worktrees import Checkout, Holder, Pool, PoolBusy, SetupFailed

_MARKERS = (b"<<<<<<< ", b">>>>>>> ")


@dataclass(frozen=True, slots=True, kw_only=True)
class Work:
    """What a successful worktree attempt left for the merge queue."""

    target: str
    branch: str
    commit: str  # the branch's tip after the attempt
    base: str  # the target's tip the worktree was made from

    @property
    def changed(self) -> bool:
        """The attempt changed something (its branch moved past its base)."""
        return self.commit != self.base


@dataclass(frozen=True, slots=True, kw_only=True)
class Entered:
    """A worktree ready for an attempt: the request to run there, and its place."""

    request: StepRequest
    checkout: Checkout
    target: str
    base: str
    resolving: tuple[str, ...] = ()  # the conflicting paths an agent is to resolve


class NotReady(Exception):
    """The worktree could not be made ready: the attempt ends with `result`."""

    def __init__(self, result: StepResult) -> None:
        super().__init__(result.how)
        self.result = result


def _failed(why: str, kind: FailureKind, tail: bytes = b"") -> StepResult:
    return StepResult(
        exit_code=None,
        tail=tail or f"{why}\n".encode(),
        how=why,
        failed=True,
        hint=Hint(kind=kind, reason=why),
    )


class Workdirs:
    """Worktrees for one worker's attempts, and the branches they land from."""

    def __init__(
        self, config: Config, pool: Pool, store: Store, *, default: Callable[[], str]
    ) -> None:
        self.config = config
        self.pool = pool
        self.store = store
        self.root = Path(store.root)
        self._default = default
        self._default_branch: str | None = None

    def target(self, step: Step) -> str:
        """The branch `step` lands on: `merge.into`, else the repository's default."""
        if step.merge is not None and step.merge.into:
            return step.merge.into
        if self._default_branch is None:
            self._default_branch = self._default()
        return self._default_branch

    @contextlib.contextmanager
    def enter(
        self,
        subj: Subject,
        step: Step,
        claim: Claim,
        request: StepRequest,
        *,
        worker: str,
        go_on: Callable[[], bool],
    ) -> Iterator[Entered]:
        """A pool worktree on the attempt's branch for the length of the `with`; NotReady
        (with the attempt's result) when it cannot be had."""
        target = self.target(step)
        branch = branch_for(subj.factory, subj.name, step.id)
        base = self._base(target, branch)
        if base is None:
            where = f" on remote {self.store.mirror.name}" if self.store.mirror else ""
            raise NotReady(
                _failed(
                    f"merge.into {target}: no such branch{where} (create it, or name another)",
                    FailureKind.TERMINAL,
                )
            )
        err = subj.last_error if subj.last_error and subj.last_error.step == step.id else None
        resolving = (
            err.conflict
            if err is not None
            and step.merge is not None
            and step.merge.on_conflict is OnConflict.AGENT
            and step.agent is not None
            else ()
        )
        resume = bool(step.agent and step.agent.resume and err is not None and err.session)
        holder = Holder(
            factory=subj.factory,
            subject=subj.name,
            step=step.id,
            attempt=claim.attempt,
            epoch=claim.epoch,
            worker=worker,
        )
        env = {**request.env, "FREQ_BRANCH": branch, "FREQ_TARGET": target}
        try:
            co = self.pool.acquire(
                holder,
                base=base,
                branch=branch,
                keep_branch=bool(resolving) or resume,
                setup=step.setup,
                env=env,
                timeout=request.timeout,
                log_path=request.log_path.with_suffix(".setup.log"),
                go_on=go_on,
            )
        except SetupFailed as exc:
            res = exc.result
            raise NotReady(
                StepResult(
                    exit_code=res.exit_code,
                    signal=res.signal,
                    timed_out=res.timed_out,
                    cancelled=res.cancelled,
                    duration_ms=res.duration_ms,
                    tail=res.tail,
                    how=f"setup {res.describe()}",
                    failed=True,
                )
            ) from None
        except PoolBusy:
            raise NotReady(
                StepResult(exit_code=None, cancelled=True, how="stopped waiting for a worktree")
            ) from None
        except FreqError as exc:
            raise NotReady(_failed(exc.message, FailureKind.RETRYABLE)) from None
        try:
            env["FREQ_WORKDIR"] = str(co.path)
            ready = replace(request, cwd=co.path, env=env)
            if resolving:
                ready = self._merge_target(ready, co, target, base, resolving)
            yield Entered(request=ready, checkout=co, target=target, base=base, resolving=resolving)
        finally:
            with contextlib.suppress(FreqError, OSError):
                self.pool.release(co)

    def _base(self, target: str, branch: str) -> str | None:
        """The target's tip a worktree starts from: the local branch, read in-process as
        the lander does (a git process less per attempt); in remote mode the remote's,
        fetched with the step's branch there (an attempt that continues its branch, made
        on another machine, finds it here)."""
        if self.store.mirror is None:
            return self.store.read_ref(f"refs/heads/{target}")
        try:
            got = self.store.remote_branches([target, branch])
        except FreqError as exc:
            raise NotReady(_failed(exc.message, FailureKind.RETRYABLE)) from None
        mine = got.get(branch)
        if mine is not None and self.store.branch_tip(branch) is None:
            proc.git(["branch", branch, mine], cwd=self.root)
        return got.get(target)

    def _merge_target(
        self,
        request: StepRequest,
        co: Checkout,
        target: str,
        base: str,
        paths: tuple[str, ...],
    ) -> StepRequest:
        """Merge the target's tip into the branch, leaving its conflicts in the files, and
        make them the agent's prompt."""
        proc.git(["merge", "--no-edit", "--no-ff", "-q", base], cwd=co.path)
        listed = "\n".join(f"- {p}" for p in paths)
        prompt = (
            f"Merging {target} into this branch ({co.branch}) conflicts in these files:\n"
            f"{listed}\n\nResolve every conflict: remove the conflict markers and keep what "
            "both sides meant. Then commit the merge (`git commit --no-edit`)."
        )
        return replace(request, prompt=prompt, resume=None)

    def finish(
        self, entered: Entered, result: StepResult, message: str
    ) -> tuple[StepResult, Work | None]:
        """After a successful run: its uncommitted work is committed on the branch (a
        conflict left unresolved fails it instead); the Work it leaves (unchanged: nothing
        to land, and the branch is gone)."""
        co = entered.checkout
        try:
            for path in entered.resolving:
                if _has_markers(co.path / path):
                    why = f"conflict markers left in {path}"
                    return replace(
                        result,
                        exit_code=result.exit_code,
                        failed=True,
                        how=why,
                        hint=Hint(kind=FailureKind.RETRYABLE, reason=why),
                    ), None
            commit = self.pool.commit_leftovers(co, message)
        except FreqError as exc:
            return replace(
                result,
                failed=True,
                how=exc.message,
                hint=Hint(kind=FailureKind.RETRYABLE, reason=exc.message),
            ), None
        assert co.branch is not None
        if commit == entered.base or merges.is_ancestor(self.root, commit, entered.base):
            # nothing to land: the branch goes, the subject moves on as a plain success
            proc.git(["update-ref", "-d", f"refs/heads/{co.branch}", commit], cwd=self.root)
            commit = entered.base
        return result, Work(
            target=entered.target, branch=co.branch, commit=commit, base=entered.base
        )


def _has_markers(path: Path) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return any(line.startswith(_MARKERS) for line in data.splitlines())


def salvage_ref(factory: str, subject: str, attempt: int) -> str:
    """Where a dead attempt's uncommitted work is kept (SPEC §3)."""
    return f"{refs.SALVAGE}{factory}/{subject}/{attempt}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Swept:
    """One leftover a sweep found, and what it did about it."""

    what: str  # worktree | branch
    name: str  # the slot, or the branch
    action: str  # removed | would remove | salvaged | kept
    detail: str
    salvage: str | None = None  # the salvage ref its uncommitted work went to


def live_holders(store: Store, snap: Snapshot, now: datetime) -> Callable[[Holder], bool]:
    """Whether a pool worktree's holder is still at work: an attempt while its claim
    (same epoch) is unexpired, a merge check while its target's queue is being served."""

    def live(h: Holder) -> bool:
        if h.step.startswith("merge:"):
            return serving(store, h.step[len("merge:") :])
        subj = snap.subjects.get((h.factory, h.subject))
        c = subj.claim if subj is not None else None
        return c is not None and c.epoch == h.epoch and c.expires_at > now

    return live


def sweep(
    store: Store,
    config: Config,
    pool: Pool,
    *,
    now: datetime,
    live: Callable[[Holder], bool],
    dry_run: bool = False,
) -> list[Swept]:
    """Remove worktrees whose attempt is gone (its claim is not live) and older than its
    step's timeout plus a lease (saving their uncommitted work first, on a salvage ref),
    and `freq/*` branches nobody needs (no live claim, no queued landing, the subject has
    moved on or is parked); then `git worktree prune`. A live claim's worktree is never
    touched, whatever its age."""
    out: list[Swept] = []
    buffer = config.settings.lease_ttl
    snap = store.snapshot()
    for slot in pool.slots():
        h = slot.holder
        if h is None or slot.acquired_at is None or live(h):
            continue
        step = config.step(h.factory, h.step)
        limit = (step.timeout if step is not None and step.timeout else timedelta(0)) + buffer
        if now - slot.acquired_at <= limit:
            continue
        who = f"{h.factory}/{h.subject} {h.step} attempt {h.attempt}"
        if dry_run:
            out.append(
                Swept(
                    what="worktree",
                    name=slot.slot,
                    action="would remove",
                    detail=f"{slot.path}: {who} is gone",
                )
            )
            continue
        saved = None
        if not h.step.startswith("merge:"):
            oid = pool.salvage_commit(
                slot.slot,
                f"{who}: uncommitted work of a stopped attempt\n\n"
                f"Saved by cleanup from {slot.path}.\n",
            )
            if oid is not None:
                saved = salvage_ref(h.factory, h.subject, h.attempt)
                with contextlib.suppress(RefConflict):
                    store.swap(saved, oid, expected=store.read_ref(saved))
        pool.remove(slot.slot)
        note = f"; its uncommitted work is on {saved}" if saved else ""
        out.append(
            Swept(
                what="worktree",
                name=slot.slot,
                action="removed",
                detail=f"{slot.path}: {who} is gone{note}",
                salvage=saved,
            )
        )
    held = {s.branch for s in pool.slots() if s.holder is not None and s.branch}
    for branch, oid in _freq_branches(Path(store.root)):
        parts = branch.split("/")
        if len(parts) != 4 or branch in held:
            continue
        _, fid, name, step_id = parts
        subj = snap.subjects.get((fid, name))
        step = config.step(fid, step_id)
        if step is None or not step.in_worktree:
            continue  # not a branch Frequency makes: someone's own freq/... branch
        if subj is not None:
            c = subj.claim
            if c is not None and c.step == step_id and c.expires_at > now:
                continue
            if subj.landing is not None and subj.landing.branch == branch:
                continue
            if step is not None and subj.state in step.from_states and subj.parked is None:
                continue  # its next attempt may continue it
        action = "would remove" if dry_run else "removed"
        if not dry_run:
            proc.git(["update-ref", "-d", f"refs/heads/{branch}", oid], cwd=store.root)
        out.append(Swept(what="branch", name=branch, action=action, detail="no attempt needs it"))
    if not dry_run:
        with contextlib.suppress(FreqError):
            pool.prune()
    return out


def _freq_branches(root: Path) -> list[tuple[str, str]]:
    """Every branch under freq/, with the commit it names (deleted only if still there)."""
    res = proc.git(
        ["for-each-ref", "--format=%(refname:lstrip=2) %(objectname)", "refs/heads/freq/"],
        cwd=root,
    )
    if not res.ok:
        return []
    return [
        (name, oid)
        for name, _, oid in (line.rpartition(" ") for line in res.text().splitlines())
        if name
    ]
