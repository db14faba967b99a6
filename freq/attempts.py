"""One claimed attempt from start to record: its runner, its environment, its outcome in git.

Must not import click or subprocess (runners start processes through freq.proc). The
outcome is recorded by compare-and-swap on the tip the attempt last wrote, so a result
whose claim was taken over meanwhile is refused, never applied (SPEC §5). What the new
subject is comes from freq/transitions.py; this module decides which rule applies.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from freq import costs, proc, refs, transitions
from freq.claims import Claims, Heartbeat, Lease
from freq.classify import Ending, Hint
from freq.clock import Clock, Random
from freq.errors import RefConflict, RemoteUnreachable, WriteBlocked
from freq.facts import mark_for
from freq.model import (
    FailureKind,
    Step,
    data_env_name,
    render_template,
    resolve_agent,
    template_problem,
)
from freq.planner import clamp_priority
from freq.repair import Repair
from freq.report import Progress, ProgressKind, Reporter
from freq.runners import StepRequest, StepResult, runner_for
from freq.runtime import Claim, Emitted, Landing, LastError, Subject, attempt_marks
from freq.store import UNCHECKED, RefUpdate, Store

if TYPE_CHECKING:
    from freq.workdirs import Work, Workdirs

_MAX_EMITTED_LINES = 100_000
_LAST_ERROR_LINES = 60  # of the last attempt's output, in {last_error}
ASK = "freq:ask"  # a stdout line `freq:ask QUESTION`: the step asks a person


@dataclass(frozen=True, slots=True, kw_only=True)
class StepOutcome:
    """What one attempt came to, as recorded (or refused) in git."""

    factory: str
    subject: str
    step: str
    attempt: int
    ok: bool
    recorded: bool
    to_state: str | None
    detail: str
    duration_ms: int
    released: bool = False  # killed (second Ctrl-C) and its claim given back, attempt unspent


class _Handle:
    """The Attempt a runner sees: go on while the lease holds and nobody cancelled."""

    def __init__(self, lease: Lease, cancel: proc.Cancel) -> None:
        self._lease = lease
        self._cancel = cancel

    def go_on(self) -> bool:
        return not self._lease.lost and not self._cancel.is_set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()


class Attempts:
    """Runs claimed attempts and records how they ended, for one worker identity."""

    def __init__(
        self,
        store: Store,
        claims: Claims,
        repair: Repair,
        *,
        clock: Clock,
        reporter: Reporter,
        rng: Random,
        heartbeat: Heartbeat,
        workdirs: Callable[[], Workdirs] | None = None,
    ) -> None:
        self.store = store
        self._workdirs = workdirs  # made on the first isolated step (freq.loop.Worker)
        self.claims = claims
        self.repair = repair
        self.clock = clock
        self.reporter = reporter
        self.rng = rng
        self.worker = claims.worker
        self.cancel = proc.Cancel()
        self.heartbeat = heartbeat
        self.chaining = True
        self.stopping = False
        self._running: set[tuple[str, str, int]] = set()  # (factory, subject, epoch)
        self._guard = threading.Lock()

    @property
    def workdirs(self) -> Workdirs | None:
        """Where isolated steps run, or None when this Attempts has none."""
        return self._workdirs() if self._workdirs is not None else None

    def holds(self, factory: str, subject: str, epoch: int) -> bool:
        """Whether this process is running that attempt now (its claim is not lost, even if
        its lease looks expired: the heartbeat renews it, or finds it taken)."""
        with self._guard:
            return (factory, subject, epoch) in self._running

    def _emit(self, kind: ProgressKind, subj: Subject, **kw: object) -> None:
        self.reporter.emit(Progress(event=kind, factory=subj.factory, subject=subj.name, **kw))  # type: ignore[arg-type]

    # ------------------------------------------------------------ run

    def execute(self, lease: Lease) -> StepOutcome:
        """Run the claimed step to its end and record the outcome (fenced by the claim)."""
        return self._run(lease, chain=False)[0]

    def execute_chain(self, lease: Lease) -> list[StepOutcome]:
        """Run the claimed step, and the subject's next steps as long as each success can
        claim the next one in the same commit (the greedy loop without a round trip)."""
        outcomes = []
        nxt: Lease | None = lease
        while nxt is not None:
            out, nxt = self._run(nxt, chain=self.chaining)
            outcomes.append(out)
        return outcomes

    def _request(
        self,
        subj: Subject,
        step: Step,
        claim: Claim,
        *,
        tip: str | None = None,
        on_line: Callable[[bytes], None] | None = None,
        **extra: str,
    ) -> StepRequest:
        request = StepRequest(
            step=step,
            cwd=self.store.root,
            env={**step_env(subj, step, claim, self.store.root, self.worker), **extra},
            timeout=step.timeout.total_seconds() if step.timeout else None,
            log_path=self.store.log_path(
                subj.factory, subj.name, step.id, claim.attempt, claim.epoch
            ),
            on_line=on_line,
        )
        if step.agent is None:
            return request
        settings = self.claims.config.settings
        agent = resolve_agent(step.agent, settings.agents)
        fac, _ = self.claims.step_of(subj.factory, step.id)
        view = self.claims.view
        left = costs.remaining_usd(
            step, fac, settings, (view.spend if view else None) or costs.NO_SPEND, self.clock.now()
        )
        err = subj.last_error if subj.last_error and subj.last_error.step == step.id else None
        resume = err.session if step.agent.resume and err is not None else None
        last = _last_error_text(err, self.store.read_output(tip) if err and tip else None)
        return replace(
            request,
            agent=agent,
            prompt=self._prompt(subj, step, claim, last, resumed=resume is not None),
            resume=resume,
            budget_usd=left,
            scratch=request.log_path.with_suffix(".d"),
            previous_totals=err.session_totals if resume is not None and err else None,
        )

    def _prompt(self, subj: Subject, step: Step, claim: Claim, last: str, *, resumed: bool) -> str:
        """The rendered prompt; a resumed session gets the failure as its prompt. A prompt
        file that cannot be read raises PromptMissing (the attempt fails, terminal)."""
        call = step.agent
        assert call is not None
        values = {
            "subject": subj.name,
            "factory_id": subj.factory,
            "step": step.id,
            "attempt": str(claim.attempt),
            "last_error": last,
            "diagnosis": subj.diagnosis or "",
        }
        if resumed:
            text = f"The last attempt failed:\n{last}\n\nFix that and finish the task."
            if subj.diagnosis:
                text += f"\n\nDiagnosis of the failure:\n{subj.diagnosis}"
            return text
        template = call.prompt
        if call.prompt_file is not None:
            try:
                template = read_prompt_file(self.store.root, call.prompt_file)
            except PromptMissing as exc:
                raise PromptMissing(f"prompt_file {exc}") from None
        return render_template(template, values, subj.data)

    @contextlib.contextmanager
    def _holding(self, leases: Sequence[Lease]) -> Iterator[_Handle]:
        """The attempt is running here for the length of the `with`: its leases renewed
        by the heartbeat, and known as this process's own."""
        keys = {_key(lease) for lease in leases}
        with self._guard:
            self._running |= keys
        for lease in leases:
            self.heartbeat.add(lease)
        try:
            yield _Handle(leases[0], self.cancel)
        finally:
            for lease in leases:
                self.heartbeat.drop(lease)
            with self._guard:
                self._running -= keys

    def _started(self, lease: Lease, request: StepRequest, detail: str) -> None:
        claim = lease.subject.claim
        assert claim is not None
        self._emit(
            ProgressKind.STARTED,
            lease.subject,
            step=request.step.id,
            attempt=claim.attempt,
            detail=detail,
        )

    def _start(self, leases: Sequence[Lease], request: StepRequest, detail: str) -> StepResult:
        self._started(leases[0], request, detail)
        with self._holding(leases) as handle:
            return runner_for(request.step, self.clock).run(request, handle)

    def _in_worktree(
        self, lease: Lease, step: Step, request: StepRequest
    ) -> tuple[StepResult, Work | None]:
        """Run the attempt in a pool worktree on its branch; a success leaves Work for
        the merge queue (freq/workdirs.py)."""
        from freq.workdirs import NotReady

        subj = lease.subject
        claim = subj.claim
        workdirs = self.workdirs
        assert claim is not None and workdirs is not None
        with self._holding([lease]) as handle:
            try:
                with workdirs.enter(
                    subj,
                    step,
                    claim,
                    request,
                    worker=self.worker,
                    go_on=lambda: handle.go_on() and not self.stopping,
                ) as entered:
                    self._started(lease, entered.request, f"in worktree {entered.checkout.slot}")
                    result = runner_for(step, self.clock).run(entered.request, handle)
                    if not (result.ok or _mapped(step, result)) or not handle.go_on():
                        return result, None
                    message = (
                        f"{subj.factory}/{subj.name}: {step.id} (attempt {claim.attempt})\n\n"
                        "What the step left uncommitted in its worktree.\n"
                    )
                    return workdirs.finish(entered, result, message)
            except NotReady as exc:
                return exc.result, None

    def _run(self, lease: Lease, *, chain: bool) -> tuple[StepOutcome, Lease | None]:
        subj = lease.subject
        claim = subj.claim
        assert claim is not None
        _fac, step = self.claims.step_of(subj.factory, claim.step)
        said: list[bytes] = []
        collect = _collector(said, emits=step.emits is not None)
        work: Work | None = None
        try:
            request = self._request(subj, step, claim, tip=lease.tip, on_line=collect)
        except PromptMissing as exc:
            result = StepResult(
                exit_code=None,
                tail=f"{exc}\n".encode(),
                how=str(exc),
                failed=True,
                hint=Hint(kind=FailureKind.TERMINAL, reason=str(exc)),
            )
        else:
            if step.in_worktree and self._workdirs is not None:
                result, work = self._in_worktree(lease, step, request)
            else:
                result = self._start([lease], request, "")
        for line in result.said:
            collect(line)
        lines = [b.decode("utf-8", "replace").rstrip("\n") for b in said]
        return self._record(lease, result, chain=chain, said=lines, work=work)

    def execute_batch(self, leases: list[Lease]) -> list[StepOutcome]:
        """Run a batch step once for all its members (FREQ_SUBJECTS, FREQ_SUBJECTS_FILE) and
        record the outcome on each; a failure applies the failure policy to each member."""
        first = leases[0].subject
        claim = first.claim
        assert claim is not None
        _fac, step = self.claims.step_of(first.factory, claim.step)
        names = [lease.subject.name for lease in leases]
        listing = (
            self.store.state_dir
            / "batches"
            / f"{first.factory}-{step.id}-{first.name}-{claim.epoch}.txt"
        )
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("".join(f"{n}\n" for n in names))
        request = self._request(
            first,
            step,
            claim,
            FREQ_SUBJECTS="\n".join(names),
            FREQ_SUBJECTS_FILE=str(listing),
        )
        # the run goes on while its first member (the slot holder) holds its claim
        result = self._start(leases, request, f"batch of {len(names)}")
        # one run: its spend is recorded once, on the first member (costs sum attempts)
        rest = replace(result, usage=None)
        return [
            self._record(lease, result if i == 0 else rest, chain=False)[0]
            for i, lease in enumerate(leases)
        ]

    # ------------------------------------------------------------ record

    def record(self, lease: Lease, result: StepResult) -> StepOutcome:
        """Record how an attempt ended, by CAS on the tip the attempt wrote last: refused
        (recorded=False) when anyone else moved the subject since, e.g. a takeover."""
        return self._record(lease, result, chain=False)[0]

    def _record(
        self,
        lease: Lease,
        result: StepResult,
        *,
        chain: bool,
        said: Sequence[str] = (),
        work: Work | None = None,
    ) -> tuple[StepOutcome, Lease | None]:
        with lease.lock:  # the heartbeat must not renew on the tip this write replaces
            return self._record_locked(lease, result, chain=chain, said=said, work=work)

    def _record_locked(
        self,
        lease: Lease,
        result: StepResult,
        *,
        chain: bool,
        said: Sequence[str],
        work: Work | None,
    ) -> tuple[StepOutcome, Lease | None]:
        subj = lease.subject
        claim = subj.claim
        assert claim is not None
        _fac, step = self.claims.step_of(subj.factory, claim.step)
        now = self.clock.now()
        mapped = _mapped(step, result)
        asked = [line[len(ASK) :].strip() for line in said if _is_ask(line)]
        if asked and not result.cancelled:
            # the step asks a person (`freq:ask QUESTION`): parked with its question,
            # whatever its exit code said
            question = next((q for q in reversed(asked) if q), "(no question given)")
            result = replace(
                result,
                failed=True,
                hint=Hint(
                    kind=FailureKind.NEEDS_HUMAN, reason="asked: freq:ask", question=question
                ),
            )
            mapped = None
        ok = released = False
        to_state: str | None = None
        if result.cancelled and (self.cancel.is_set() or self.stopping):
            # killed (second Ctrl-C), or stopped waiting for a worktree (first Ctrl-C)
            released = True
            # interrupted twice: give the attempt back, as if it had never been claimed
            change = transitions.released(
                subj, at=now, worker=self.worker, duration_ms=result.duration_ms
            )
            detail = "interrupted; claim released"
        elif result.ok or mapped is not None:
            to_state = mapped or step.to_state
            emitted: tuple[Emitted, ...] = ()
            if step.emits is not None:
                from freq.discovery import parse_emitted

                wanted, problems = parse_emitted(
                    [line for line in said if not _is_ask(line)],
                    step.emits.factory_id,
                    step.emits.state,
                )
                emitted = tuple(wanted)
                for problem in problems:
                    self._emit(ProgressKind.EMIT, subj, step=step.id, detail=problem)
            if work is not None and work.changed:
                landing = Landing(
                    step=step.id,
                    attempt=claim.attempt,
                    to_state=to_state,
                    target=work.target,
                    branch=work.branch,
                    commit=work.commit,
                    base=work.base,
                    queued_at=now,
                    priority=_priority(subj),
                    exit_code=result.exit_code,
                    duration_ms=result.duration_ms,
                    touches=claim.touches,
                )
                change = transitions.queued(
                    subj,
                    landing=landing,
                    at=now,
                    worker=self.worker,
                    duration_ms=result.duration_ms,
                    exit_code=result.exit_code,
                    emitted=emitted,
                )
                chain = False  # the next step waits for the landing
                detail = f"queued to land on {work.target} ({subj.state} -> {to_state} once landed)"
            else:
                change = transitions.succeeded(
                    subj,
                    to_state=to_state,
                    at=now,
                    worker=self.worker,
                    duration_ms=result.duration_ms,
                    exit_code=result.exit_code,
                    mark=mark_for(step, self.store),
                    emitted=emitted,
                )
                detail = f"{subj.state} -> {to_state}"
            ok = True
        else:
            ending = Ending(
                exit_code=result.exit_code,
                signal=result.signal,
                timed_out=result.timed_out,
                tail=result.tail.decode("utf-8", "replace"),
                hint=result.hint,
            )
            change, cls = transitions.failed(
                subj,
                step,
                ending,
                how=result.how,
                duration_ms=result.duration_ms,
                at=now,
                worker=self.worker,
                rng=self.rng,
            )
            err = change.subject.last_error
            assert err is not None
            if result.usage is not None and result.usage.session is not None:
                # a later attempt with `resume: true` continues this session
                err = replace(
                    err, session=result.usage.session, session_totals=result.session_totals
                )
                change = replace(change, subject=replace(change.subject, last_error=err))
            detail = f"{err.reason}: {cls.kind.value} ({cls.reason})"
        if result.usage is not None:  # a released attempt may have spent too
            change = replace(change, event=replace(change.event, usage=result.usage))
        recorded = True
        nxt = None
        try:
            nxt = self._persist(lease, change, result.tail, chain=ok and chain)
        except RefConflict:
            recorded = False
            detail = "result refused: the claim was taken over (stale epoch)"
        except WriteBlocked as exc:
            recorded = False
            detail = f"result lost: {exc.message} until the lease ran out; the step will re-run"
        lease.done = True  # recorded or refused, this attempt's claim is over: never renew it
        lease.subject = change.subject if nxt is None else lease.subject
        new = change.subject
        with contextlib.suppress(WriteBlocked):
            # each is done again by whoever comes next: a lock is free once its claim
            # ended, emitted subjects are created by any planner, a failure is parked by one
            self.claims.give_back(lease)
            if recorded and ok and new.emitted:
                self.repair.create(new.emitted, subj)
            if recorded and not ok and new.last_error is not None and new.claim is None:
                self.repair.after_failure(new, lease.tip)
        self._emit(
            ProgressKind.FINISHED if ok and recorded else ProgressKind.FAILED,
            subj,
            step=step.id,
            attempt=claim.attempt,
            detail=detail,
        )
        if nxt is not None and nxt.subject.claim is not None:
            self._emit(
                ProgressKind.CLAIMED,
                subj,
                step=nxt.subject.claim.step,
                attempt=nxt.subject.claim.attempt,
            )
        out = StepOutcome(
            factory=subj.factory,
            subject=subj.name,
            step=step.id,
            attempt=claim.attempt,
            ok=ok and recorded,
            recorded=recorded,
            to_state=to_state,
            detail=detail,
            duration_ms=result.duration_ms,
            released=released and recorded,
        )
        return out, nxt

    def _persist(
        self, lease: Lease, change: transitions.Change, output: bytes, *, chain: bool
    ) -> Lease | None:
        """Write the attempt's outcome by CAS on the lease's tip (chaining the next claim
        when it can); the chained lease, if any. A git lock a live process holds, or a full
        disk, is waited out while the lease lasts (a result is worth keeping); after that
        the error is raised and the claim, expired, is recovered like a lost worker's."""
        delay = 0.05
        offline = False
        while True:
            try:
                nxt = None
                if chain and not self.stopping and not offline:
                    nxt = self.claims.chain(lease, change, output)
                if nxt is None:
                    subj = lease.subject
                    # remote mode: a result the remote cannot take now is kept here and
                    # pushed once it answers (refused then if the claim was taken over)
                    x = change.subject.landing
                    lease.tip = self.store.advance(
                        refs.subject_ref(subj.factory, subj.name),
                        change.subject,
                        change.event,
                        expected=lease.tip,
                        output=output,
                        keep=True,
                        # remote mode: the work goes with the result, for any machine's
                        # lander (its branch is the claim holder's: the subject ref fences it)
                        also=[RefUpdate(f"refs/heads/{x.branch}", x.commit, UNCHECKED)]
                        if x is not None
                        else (),
                    )
                return nxt
            except RemoteUnreachable:
                offline = True  # no chained claim without the remote: the result alone
                continue
            except WriteBlocked as exc:
                claim = lease.subject.claim
                left = (claim.expires_at - self.clock.now()).total_seconds() if claim else 0.0
                if left <= delay:
                    raise
                self._emit(ProgressKind.PROBLEM, lease.subject, detail=f"{exc.message}; retrying")
                self.clock.sleep(delay)
                delay = min(delay * 2, 1.0)


def step_env(subj: Subject, step: Step, claim: Claim, root: Path, worker: str) -> dict[str, str]:
    """The FREQ_* variables a step runs with (SPEC §2); data keys as FREQ_DATA_<KEY>."""
    env = {
        **attempt_marks(worker=worker, factory=subj.factory, subject=subj.name, epoch=claim.epoch),
        "FREQ_STEP": step.id,
        "FREQ_ATTEMPT": str(claim.attempt),
        "FREQ_STATE": subj.state,
        "FREQ_WORKDIR": str(root),
        "FREQ_REPO": str(root),
    }
    for k, v in subj.data.items():
        env[data_env_name(k)] = v  # keys are identifiers, one per variable (data_problem)
    return env


def _mapped(step: Step, result: StepResult) -> str | None:
    """The state an `outcomes:` entry gives the attempt's exit code, if any (an attempt the
    runner judged failed has none)."""
    if result.exit_code is None or result.failed:
        return None
    return step.outcomes.get(result.exit_code)


def _priority(subj: Subject) -> int:
    """A subject's merge-queue priority: its `priority` data key when it is a whole number."""
    raw = subj.data.get("priority", "0").strip()
    try:
        return clamp_priority(int(raw))
    except ValueError:
        return 0


def _key(lease: Lease) -> tuple[str, str, int]:
    claim = lease.subject.claim
    assert claim is not None
    return lease.subject.factory, lease.subject.name, claim.epoch


def _collector(into: list[bytes], *, emits: bool) -> Callable[[bytes], None]:
    """Keep the `freq:ask ...` lines of a step's output, and its `freq:subject ...` lines
    when it `emits:` (at most 100,000 in all)."""

    def take(line: bytes) -> None:
        if len(into) >= _MAX_EMITTED_LINES:
            return
        if line.startswith(b"freq:ask") or (emits and line.startswith(b"freq:subject ")):
            into.append(line)

    return take


def _is_ask(line: str) -> bool:
    return line == ASK or line.startswith(ASK + " ")


class PromptMissing(Exception):
    """An agent step's prompt cannot be made (its prompt_file is missing or malformed)."""


def read_prompt_file(root: Path, name: str) -> str:
    """The template in an agent step's `prompt_file` (relative to `root`); PromptMissing
    (`NAME: why`) when it cannot be read or does not render. `validate` asks the same."""
    try:
        template = (root / name).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise PromptMissing(f"{name}: {why}") from None
    if problem := template_problem(template):
        raise PromptMissing(f"{name}: {problem}")
    return template


def _last_error_text(err: LastError | None, output: bytes | None) -> str:
    """`{last_error}`: how the last attempt of the step failed and the end of its output
    (a failed verify's output, or the agent's own last words)."""
    if err is None:
        return ""
    head = f"attempt {err.attempt} failed: {err.reason}"
    if output:
        lines = output.decode("utf-8", "replace").splitlines()[-_LAST_ERROR_LINES:]
        return head + "\n" + "\n".join(lines)
    return head + (f"\n{err.summary}" if err.summary else "")
