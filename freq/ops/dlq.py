"""Dead-letter queue actions: list, show and requeue entries.

Must not import click, dulwich, subprocess or pexpect, and never prints: each function takes an
App and plain values and returns a result dataclass (or raises a FreqError).
"""

from __future__ import annotations

from dataclasses import dataclass

from freq import refs
from freq.dlq import Dlq, Entry
from freq.errors import AlreadyRequeued, FreqError, Hint
from freq.model import format_duration
from freq.ops.app import App, _known, _who


@dataclass(frozen=True, slots=True, kw_only=True)
class DlqRow:
    """One dead-letter entry as `dlq list` shows it."""

    id: str
    commit: str
    kind: str
    factory: str
    subject: str
    step: str
    attempt: int
    failure_class: str
    reason: str
    at: str
    requeued_as: str | None = None
    requeues: str | None = None
    conflict: tuple[str, ...] = ()  # a landing that conflicted: the paths
    salvage: tuple[str, ...] = ()  # uncommitted work of the subject's dead attempts


def _row(e: Entry, requeued: dict[str, str]) -> DlqRow:
    return DlqRow(
        id=e.id,
        commit=e.commit,
        kind=e.kind,
        factory=e.factory,
        subject=e.subject,
        step=e.step,
        attempt=e.attempt,
        failure_class=e.failure_class,
        reason=e.reason,
        at=refs.iso(e.at),
        requeued_as=requeued.get(e.id),
        requeues=e.requeues,
        conflict=e.conflict,
        salvage=e.salvage,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DlqListResult:
    """`dlq list`: entries newest first, and the queue commits that could not be read."""

    rows: tuple[DlqRow, ...]
    problems: tuple[str, ...] = ()


def dlq_list(
    app: App, factory_id: str | None = None, *, include_requeued: bool = False
) -> DlqListResult:
    """Dead-letter entries, newest first: those still waiting (all with include_requeued).
    An unreadable entry is skipped and described in `problems`; the rest are listed."""
    queue = Dlq(app.store, app.clock)
    if factory_id is not None:
        _known(app, factory_id)
    factories = [factory_id] if factory_id else queue.factories()
    rows: list[DlqRow] = []
    problems: list[str] = []
    for f in factories:
        entries = list(queue.entries(f, problems=problems))
        requeued = {e.requeues: e.id for e in entries if e.kind == "requeue" and e.requeues}
        for e in entries:
            if e.kind == "entry" and (include_requeued or e.id not in requeued):
                rows.append(_row(e, requeued))
    return DlqListResult(
        rows=tuple(sorted(rows, key=lambda r: r.at, reverse=True)), problems=tuple(problems)
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class DlqShow:
    """One entry in full, with its output tail and what became of it."""

    entry: DlqRow
    state: str
    exit_code: int | None
    duration_ms: int | None
    subject_commit: str
    question: str | None
    output_tail: str
    by: str = ""  # a requeue record: who requeued
    diagnosis: str | None = None  # the newest root cause found by `dlq diagnose`
    diagnosis_entry: str | None = None
    diagnoses: str | None = None  # a diagnosis record: the failure it diagnoses
    agent: str | None = None


def dlq_show(app: App, entry_id: str) -> DlqShow:
    """One dead-letter entry: the failure, its class and reason, and the output tail."""
    queue = Dlq(app.store, app.clock)
    e = queue.find(entry_id)
    again = queue.requeue_of(e) if e.kind == "entry" else None
    found = queue.diagnosis_of(e) if e.kind == "entry" else None
    row = _row(e, {e.id: again.id} if again else {})
    return DlqShow(
        diagnosis=queue.output(found).strip() if found else None,
        diagnosis_entry=found.id if found else None,
        diagnoses=e.diagnoses,
        agent=e.agent,
        entry=row,
        state=e.state,
        exit_code=e.exit_code,
        duration_ms=e.duration_ms,
        subject_commit=e.subject_commit,
        question=e.question,
        output_tail=queue.output(e),
        by=e.by,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class RequeueResult:
    """A requeue: the entry it wrote and where the subject went back to."""

    entry: str
    requeue_entry: str
    factory: str
    subject: str
    state: str


def dlq_requeue(
    app: App, entry_id: str, *, reason: str = "", by: str | None = None
) -> RequeueResult:
    """Append a requeue entry and put the subject back in the state it failed in, with a
    fresh attempt budget. A second requeue of the same entry is refused."""
    queue = Dlq(app.store, app.clock)
    e = queue.find(entry_id)
    if e.kind == "repair":
        raise FreqError(f"{e.id} records a repair of the queue, not a failure; nothing to requeue")
    if e.kind == "diagnosis":
        raise FreqError(f"{e.id} is a diagnosis, not a failure; requeue {e.diagnoses} instead")
    if e.kind != "entry":
        raise FreqError(f"{e.id} is a requeue record, not a failure; requeue {e.requeues} instead")
    return _requeue(app, queue, e, reason=reason, by=by, diagnosis=None)


def _requeue(
    app: App, queue: Dlq, e: Entry, *, reason: str, by: str | None, diagnosis: str | None
) -> RequeueResult:
    subj, tip = app.store.read_subject(e.factory, e.subject)
    err = subj.last_error
    waiting = err is not None and err.dlq == e.id
    done = queue.requeue_of(e)
    if done is not None and not waiting:
        raise AlreadyRequeued(
            f"{e.id} was already requeued as {done.id} at {refs.iso(done.at)}; nothing was changed",
            hint=Hint(text="see", command=("show", e.factory, e.subject)),
        )
    if not waiting:
        raise FreqError(
            f"{e.factory}/{e.subject} has moved on since {e.id} (now in "
            f"{subj.state}); nothing was requeued"
        )
    if done is None:
        done = queue.append(
            Entry(
                id="",
                seq=0,
                kind="requeue",
                factory=e.factory,
                subject=e.subject,
                at=app.clock.now(),
                requeues=e.id,
                by=_who(app, by),
                reason=reason,
            ),
            b"",
        )
    # done exists here; a requeue record whose subject was never moved (a crash between
    # the two writes) is completed rather than refused
    from freq.transitions import requeued

    change = requeued(
        subj,
        state=e.state,
        record=done.id,
        at=app.clock.now(),
        by=_who(app, by),
        reason=reason or f"requeued {e.id}",
        diagnosis=diagnosis,
    )
    app.store.advance(
        refs.subject_ref(e.factory, e.subject), change.subject, change.event, expected=tip
    )
    return RequeueResult(
        entry=e.id, requeue_entry=done.id, factory=e.factory, subject=e.subject, state=e.state
    )


# ---------------------------------------------------------------- diagnose and fix

DIAGNOSE_AGENT = "diagnose"  # the named agent of frequency.yaml that `dlq diagnose` runs
DIAGNOSE_TIMEOUT = 15 * 60.0  # seconds, unless frequency.yaml's defaults.timeout says
_HISTORY = 15  # events of the subject's recent history in the diagnosis prompt
_OUTPUT_CHARS = 12_000  # of the failed attempt's output tail in the prompt

DIAGNOSE_PROMPT = """\
You are diagnosing a step of a Frequency pipeline that failed and stopped retrying.
Find its root cause. Do not change any file. Reply with the root cause in one line first,
then the evidence from the output below, then the concrete change that would fix it.

Factory: {factory}  Subject: {subject}  Step: {step} (attempt {attempt})
Failure: {failure} ({reason}){exit}
{question}
The step, as configured:
{step_config}

Output tail of the failed attempt:
{output}

Recent history of the subject (newest first):
{history}
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class DiagnoseResult:
    """A root cause found by the `diagnose` agent, appended to the queue."""

    entry: str  # the failure diagnosed
    diagnosis_entry: str  # the new entry holding the root cause
    agent: str
    root_cause: str  # its first line
    text: str  # all the agent said
    cost_usd: float | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None


def _step_config(app: App, e: Entry) -> str:
    step = app.config.step(e.factory, e.step)
    if step is None:
        return f"  (step {e.step} is no longer configured)"
    lines = [f"  id: {step.id}", f"  from_states: {list(step.from_states)} -> {step.to_state}"]
    if step.run is not None:
        lines.append(f"  run: {step.run if isinstance(step.run, str) else list(step.run)}")
    if step.agent is not None:
        call = step.agent
        lines.append(f"  agent: {call.use}" + (f" (model {call.model})" if call.model else ""))
        if call.prompt:
            lines.append("  prompt: " + call.prompt.replace("\n", "\n    "))
        if call.prompt_file:
            lines.append(f"  prompt_file: {call.prompt_file}")
    if step.verify is not None:
        lines.append(f"  verify: {step.verify}")
    if step.timeout is not None:
        lines.append(f"  timeout: {format_duration(step.timeout)}")
    lines.append(f"  retry: max_attempts {step.retry.max_attempts}; failure: {step.failure.value}")
    return "\n".join(lines)


def _history(app: App, e: Entry) -> str:
    ref = refs.subject_ref(e.factory, e.subject)
    tip = app.store.read_ref(ref)
    if tip is None:
        return "  (no history: the subject ref is gone)"
    lines = []
    for entry in app.store.history({ref: tip}, broken=[]):
        if entry.renewal:
            continue
        lines.append(f"  {refs.iso(entry.at)}  {entry.message.splitlines()[0]}")
        if len(lines) >= _HISTORY:
            break
    return "\n".join(lines)


def diagnose_prompt(app: App, e: Entry, output: str) -> str:
    """What the diagnose agent is asked: the failure, the step, its output and history."""
    return DIAGNOSE_PROMPT.format(
        factory=e.factory,
        subject=e.subject,
        step=e.step,
        attempt=e.attempt,
        failure=e.failure_class,
        reason=e.reason,
        exit=f", exit code {e.exit_code}" if e.exit_code is not None else "",
        question=f"The step asked: {e.question}\n" if e.question else "",
        step_config=_step_config(app, e),
        output=output[-_OUTPUT_CHARS:].rstrip("\n") or "(no output)",
        history=_history(app, e),
    )


class _Foreground:
    """The Attempt a foreground agent run sees: it goes on until it ends (Ctrl-C stops it
    through the process funnel)."""

    def go_on(self) -> bool:
        return True

    def cancelled(self) -> bool:
        return False


def _failure(app: App, entry_id: str) -> tuple[Dlq, Entry]:
    queue = Dlq(app.store, app.clock)
    e = queue.find(entry_id)
    if e.kind != "entry":
        what = {"requeue": "a requeue record", "diagnosis": "a diagnosis", "repair": "a repair"}
        target = e.diagnoses or e.requeues
        raise FreqError(
            f"{e.id} is {what.get(e.kind, e.kind)}, not a failure"
            + (f"; use {target}" if target else "")
        )
    return queue, e


def dlq_diagnose(app: App, entry_id: str, *, by: str | None = None) -> DiagnoseResult:
    """Run the `diagnose` agent of frequency.yaml on a failure (its step, prompt, output
    tail and the subject's history) and append its root cause to the queue as a new entry
    linked to the failure. The failure itself is never rewritten."""
    from freq.model import AgentCall, Step, resolve_agent
    from freq.runners import StepRequest
    from freq.runners.agent import AgentRunner

    queue, e = _failure(app, entry_id)
    agents = app.config.settings.agents
    if DIAGNOSE_AGENT not in agents:
        raise FreqError(
            "no agent named diagnose in .frequency/frequency.yaml",
            hint=Hint(
                text="add e.g. `agents: {diagnose: {use: claude}}` and see", command=("validate",)
            ),
        )
    agent = resolve_agent(AgentCall(use=DIAGNOSE_AGENT), agents)
    prompt = diagnose_prompt(app, e, queue.output(e))
    step = Step(
        id="diagnose",
        from_states=(e.state or "failed",),
        to_state=e.state or "failed",
        agent=AgentCall(use=DIAGNOSE_AGENT, prompt=prompt),
    )
    log = app.store.state_dir / "logs" / "dlq" / e.factory / f"{e.seq}-diagnose.log"
    timeout = app.config.settings.default_timeout
    result = AgentRunner(app.clock).run(
        StepRequest(
            step=step,
            cwd=app.store.root,
            env={
                "FREQ_FACTORY": e.factory,
                "FREQ_SUBJECT": e.subject,
                "FREQ_STEP": e.step,
                "FREQ_REPO": str(app.store.root),
                "FREQ_WORKDIR": str(app.store.root),
            },
            timeout=timeout.total_seconds() if timeout else DIAGNOSE_TIMEOUT,
            log_path=log,
            agent=agent,
            prompt=prompt,
        ),
        _Foreground(),
    )
    text = b"".join(result.said).decode("utf-8", "replace").strip()
    if not result.ok or not text:
        why = result.hint.reason if result.hint else result.how
        raise FreqError(
            f"the diagnose agent ({agent.use}) failed: {why}; nothing was appended",
            hint=Hint(text="its output is in " + str(log)),
        )
    root = text.splitlines()[0].strip()
    usage = result.usage
    done = queue.append(
        Entry(
            id="",
            seq=0,
            kind="diagnosis",
            factory=e.factory,
            subject=e.subject,
            at=app.clock.now(),
            step=e.step,
            attempt=e.attempt,
            state=e.state,
            diagnoses=e.id,
            agent=agent.name,
            usage=usage,
            by=_who(app, by),
            reason=root,
        ),
        (text + "\n").encode(),
    )
    return DiagnoseResult(
        entry=e.id,
        diagnosis_entry=done.id,
        agent=agent.name,
        root_cause=root,
        text=text,
        cost_usd=usage.cost_usd if usage else None,
        tokens_in=usage.tokens_in if usage else None,
        tokens_out=usage.tokens_out if usage else None,
    )


def dlq_fix(app: App, entry_id: str, *, reason: str = "", by: str | None = None) -> RequeueResult:
    """Requeue a failure with its newest diagnosis handed to the next attempt as
    `{diagnosis}` (the dashboard's Fix button). Refused when it has no diagnosis yet."""
    queue, e = _failure(app, entry_id)
    found = queue.diagnosis_of(e)
    if found is None:
        raise FreqError(
            f"{e.id} has no diagnosis yet; nothing was requeued",
            hint=Hint(text="run", command=("dlq", "diagnose", e.id)),
        )
    text = queue.output(found).strip() or found.reason
    return _requeue(app, queue, e, reason=reason or f"fix from {found.id}", by=by, diagnosis=text)
