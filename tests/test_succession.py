"""Legal successors of a subject's commits (freq/succession.py), table-tested without git:
histories made by the real transition functions pass, forged ones fail with one line."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

from freq import refs, succession
from freq import transitions as t
from freq.classify import Ending
from freq.model import (
    ClassifyRule,
    Factory,
    FailureKind,
    FailureMode,
    Isolation,
    RetryPolicy,
    Step,
)
from freq.runtime import Event, EventKind, Landing, Subject

REF = "refs/frequency/subjects/f/x"
T0 = datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC)  # microseconds: git keeps milliseconds
TTL = timedelta(seconds=60)
BUILD = Step(
    id="build",
    from_states=("new",),
    to_state="built",
    run="make",
    outcomes=MappingProxyType({3: "new"}),
    classify=(ClassifyRule(exit=9, kind=FailureKind.QUOTA),),
)
REVIEW = Step(
    id="review",
    from_states=("built",),
    to_state="reviewed",
    run="check",
    failure=FailureMode.TERMINAL,
    retry=RetryPolicy(max_attempts=1),
)
GATE = Step(id="gate", from_states=("reviewed",), to_state="approved")
SHIP = Step(
    id="ship",
    from_states=("approved",),
    to_state="done",
    run="ship",
    isolation=Isolation.WORKTREE,
    on_terminal="failed",
)
F = Factory(
    factory_id="f",
    path=".frequency/f.yaml",
    initial="new",
    terminal=("done", "failed"),
    steps=(BUILD, REVIEW, GATE, SHIP),
)


def _at(i: int) -> datetime:
    return T0 + timedelta(seconds=7 * i)


def _fail(subj: Subject, step: Step, code: int, i: int) -> t.Change:
    change, _cls = t.failed(
        subj,
        step,
        Ending(exit_code=code, tail="boom"),
        how=f"exit {code}",
        duration_ms=5,
        at=_at(i),
        worker="w1",
        rng=random.Random(1),
    )
    return change


def _landing(subj: Subject, i: int) -> Landing:
    c = subj.claim
    assert c is not None
    return Landing(
        step=c.step,
        attempt=c.attempt,
        to_state="done",
        target="main",
        branch="freq/f/x/ship",
        commit="a" * 40,
        base="b" * 40,
        queued_at=_at(i),
    )


def _history() -> list[t.Change]:
    """A subject through every rule of freq/transitions.py, as the runtime applies them."""
    out = [t.created("f", "x", "new", at=_at(0), worker="w1", data={"k": "v"})]

    def add(step: Callable[[Subject, int], t.Change]) -> None:
        out.append(step(out[-1].subject, len(out)))

    def claim(step: str, attempt: int) -> Callable[[Subject, int], t.Change]:
        return lambda s, i: t.claimed(
            s, step=step, attempt=attempt, worker="w1", at=_at(i), ttl=TTL, touches=("src/**",)
        )

    def done(to: str) -> Callable[[Subject, int], t.Change]:
        return lambda s, i: t.succeeded(
            s, to_state=to, at=_at(i), worker="w1", duration_ms=9, exit_code=0, mark="c" * 40
        )

    add(claim("build", 1))
    add(lambda s, i: t.renewed(s, at=_at(i), ttl=TTL, worker="w1"))
    add(lambda s, i: _fail(s, BUILD, 1, i))  # retryable, with a backoff
    add(claim("build", 2))
    add(lambda s, i: _fail(s, BUILD, 9, i))  # a quota: the attempt is given back
    add(claim("build", 2))
    add(done("new"))  # `outcomes: {3: new}` sends it back
    add(claim("build", 1))
    add(lambda s, i: t.released(s, at=_at(i), worker="w1", duration_ms=3))
    add(claim("build", 1))
    add(lambda s, i: t.worker_lost(s, BUILD, at=_at(i), worker="w2", rng=random.Random(2)))
    add(claim("build", 2))
    out.append(
        t.chained(
            done("built")(out[-1].subject, len(out)),
            step="review",
            attempt=1,
            worker="w1",
            at=_at(len(out)),
            ttl=TTL,
        )
    )
    add(lambda s, i: _fail(s, REVIEW, 1, i))  # terminal: final
    add(lambda s, i: t.parked(s, entry="f#1", on_terminal=None, at=_at(i), worker="w1"))
    add(lambda s, i: t.requeued(s, state="built", record="f#2", at=_at(i), by="ana", reason="ok"))
    add(claim("review", 1))
    add(done("reviewed"))
    add(lambda s, i: t.approved(s, GATE, at=_at(i), by="ana", reason="ship it"))
    add(claim("ship", 1))
    add(
        lambda s, i: t.queued(
            s, landing=_landing(s, i), at=_at(i), worker="w1", duration_ms=4, exit_code=0
        )
    )
    add(
        lambda s, i: t.land_failed(
            s, SHIP, why="conflict", detail="x", at=_at(i), worker="w1", rng=random.Random(3)
        )
    )
    add(claim("ship", 2))
    add(
        lambda s, i: t.queued(
            s, landing=_landing(s, i), at=_at(i), worker="w1", duration_ms=4, exit_code=0
        )
    )
    add(lambda s, i: t.landed(s, commit="d" * 40, at=_at(i), worker="w1"))
    add(lambda s, i: t.moved(s, state="approved", at=_at(i), by="ana", reason="again\nplease"))
    add(claim("ship", 1))
    add(
        lambda s, i: t.repaired(
            s,
            at=_at(i),
            by="ana",
            missing=("e" * 40,),
            lost=2,
            seen_epoch=s.epoch + 3,
            restored_from="the snapshot cache",
            reason="history broke",
        )
    )
    return out


def _record(change: t.Change) -> succession.Record:
    """The commit as git keeps it: its message and subject.json, read back."""
    rec = succession.read(
        REF, refs.format_message(change.event), refs.subject_to_json(change.subject)
    )
    assert isinstance(rec, succession.Record), rec
    return rec


def _records() -> list[succession.Record]:
    return [_record(c) for c in _history()]


@pytest.mark.parametrize("factory", [F, None], ids=["configured", "structure-only"])
def test_every_rule_of_the_runtime_is_a_legal_successor(factory: Factory | None) -> None:
    """Each commit of a history made by the real transition functions follows its parent,
    with the factory's configuration and without it."""
    records = _records()
    kinds = {r.event.kind for r in records}
    assert kinds == set(EventKind)  # every event kind is in the history
    parent: Subject | None = None
    for rec in records:
        assert succession.check(parent, rec.subject, rec.event, factory=factory) is None, rec.event
        parent = rec.subject


def test_a_repair_may_start_a_history() -> None:
    """A repair whose chain was intact nowhere is a new root (chains.py): allowed."""
    last = _history()[-1]
    rec = _record(last)
    assert succession.check(None, rec.subject, rec.event, factory=F) is None


def test_event_trailers_read_back_as_the_event() -> None:
    """refs.event_from_trailers is format_message's inverse (a reason on one line)."""
    for change in _history():
        ev = change.event
        back = refs.event_from_trailers(refs.parse_trailers(refs.format_message(ev)))
        want = replace(
            ev,
            at=refs.parse_iso(refs.iso(ev.at)),
            reason=" ".join(ev.reason.split()) if ev.reason else None,
            details=None,
        )
        assert back == want


def _pair(n: int) -> tuple[Subject, succession.Record]:
    """The parent of the n-th commit of the history, and that commit."""
    records = _records()
    return records[n - 1].subject, records[n]


def _forged(change: t.Change, **subject: object) -> t.Change:
    return replace(change, subject=replace(change.subject, **subject))


def _index(kind: EventKind, nth: int = 0) -> int:
    hits = [i for i, c in enumerate(_history()) if c.event.kind is kind]
    return hits[nth]


CLAIM = _index(EventKind.CLAIMED)  # created -> claimed build attempt 1


def _check(parent: Subject | None, change: t.Change, factory: Factory | None = F) -> str | None:
    rec = _record(change)
    return succession.check(parent, rec.subject, rec.event, factory=factory)


def test_a_falling_epoch_is_refused() -> None:
    """A commit whose epoch is below its parent's."""
    parent, _ = _pair(CLAIM)
    moved = t.moved(parent, state="new", at=_at(50), by="ana", reason="x")  # epoch 1
    claim = t.claimed(moved.subject, step="build", attempt=1, worker="w", at=_at(51), ttl=TTL)
    forged = _forged(claim, epoch=1, claim=replace(claim.subject.claim, epoch=1))  # type: ignore[arg-type]
    assert _check(moved.subject, forged) == (
        "its epoch is 1; a claimed event from its parent gives 2"
    )
    stale = _forged(claim, epoch=0, claim=replace(claim.subject.claim, epoch=0))  # type: ignore[arg-type]
    assert _check(moved.subject, stale) == (
        "its epoch falls from 1 to 0 (epochs fence attempts, never fall)"
    )


def test_a_fenced_off_result_is_refused() -> None:
    """A success recorded by an attempt whose claim a person's move fenced off."""
    claimed = _history()[CLAIM]
    moved = t.moved(claimed.subject, state="new", at=_at(50), by="ana", reason="stop")
    late = t.succeeded(
        claimed.subject, to_state="built", at=_at(51), worker="w1", duration_ms=1, exit_code=0
    )
    assert _check(moved.subject, late) == (
        "Freq-Epoch 1 is below its parent's epoch 2: the result of an attempt that was fenced off"
    )


def test_freq_from_must_be_the_parents_state() -> None:
    """A step's result that says it left another state than its parent's."""
    hist = _history()
    claimed = hist[CLAIM]
    done = t.succeeded(
        claimed.subject, to_state="built", at=_at(60), worker="w1", duration_ms=1, exit_code=0
    )
    forged = replace(done, event=replace(done.event, from_state="reviewed"))
    assert _check(claimed.subject, forged) == (
        "Freq-From is 'reviewed', but its parent left it in 'new'"
    )


def test_a_state_no_step_produces_is_refused() -> None:
    """build gives built (or new, by its outcomes), not done; a move must name a state of
    the factory; without the configuration only the structure is judged."""
    claimed = _history()[CLAIM].subject
    done = t.succeeded(
        claimed, to_state="done", at=_at(60), worker="w1", duration_ms=1, exit_code=0
    )
    assert _check(claimed, done) == (
        "build cannot move it from 'new' to 'done' (a success of it enters built, new)"
    )
    assert _check(claimed, done, factory=None) is None
    moved = t.moved(claimed, state="nowhere", at=_at(60), by="ana", reason="x")
    assert _check(claimed, moved) == "moved into 'nowhere', which is not a state of factory 'f'"
    sneaky = t.approved(
        claimed, Step(id="gate", from_states=("new",), to_state="done"), at=_at(60), by="m"
    )
    assert _check(claimed, sneaky) == (
        "approving gate cannot move it from 'new' to 'done' (it moves reviewed to approved)"
    )
    not_gate = t.approved(claimed, BUILD, at=_at(60), by="m")
    assert _check(claimed, not_gate) == (
        "approves build, which is not a gate: approving it moves nothing"
    )


def test_claims_follow_the_steps_and_one_claim_at_a_time() -> None:
    """A claim of a step that does not start from the state, of a step the factory lacks,
    or over a claim that is still recorded."""
    hist = _history()
    new = hist[0].subject
    wrong = t.claimed(new, step="review", attempt=1, worker="w", at=_at(1), ttl=TTL)
    assert _check(new, wrong) == "claims review in 'new'; it starts from built"
    ghost = t.claimed(new, step="ghost", attempt=1, worker="w", at=_at(1), ttl=TTL)
    assert _check(new, ghost) == "factory 'f' has no step 'ghost'"
    held = hist[CLAIM].subject
    again = t.claimed(held, step="build", attempt=2, worker="w2", at=_at(2), ttl=TTL)
    assert _check(held, again) == (
        "a claimed event cannot follow its parent: attempt 1 of build still holds it (a lease "
        "is taken over only after it is recorded lost)"
    )


def test_parking_and_chains_follow_the_configuration() -> None:
    """A parked failure stays or goes to on_terminal; a chained claim's step starts from the
    state the success entered."""
    hist = _history()
    i = _index(EventKind.PARKED)
    failed = hist[i - 1].subject
    away = t.parked(failed, entry="f#1", on_terminal="done", at=_at(70), worker="w1")
    assert _check(failed, away) == (
        "parking a failure of review cannot move it from 'built' to 'done' (it stays)"
    )
    j = next(k for k, c in enumerate(hist) if c.event.next_claim)
    before = hist[j - 1].subject
    bad = t.chained(
        t.succeeded(before, to_state="built", at=_at(71), worker="w1", duration_ms=1, exit_code=0),
        step="ship",
        attempt=1,
        worker="w1",
        at=_at(71),
        ttl=TTL,
    )
    assert _check(before, bad) == "claims ship in 'built'; it starts from approved"


def test_history_has_one_creation_at_its_start() -> None:
    """A history starts with a creation and never has a second one."""
    hist = _history()
    assert _check(hist[0].subject, hist[0]) == ("records a creation on top of an existing history")
    assert (
        _check(None, hist[CLAIM]) == "a history starts with its creation, not with a claimed event"
    )


def test_a_renewal_that_changes_the_holder_is_refused() -> None:
    """A renewal carries the same claim: another holder is not what renewing gives."""
    claimed = _history()[CLAIM].subject
    renew = t.renewed(claimed, at=_at(5), ttl=TTL, worker="w1")
    c = renew.subject.claim
    assert c is not None
    forged = _forged(renew, claim=replace(c, holder="intruder"))
    assert _check(claimed, forged) == (
        "its claim's holder is 'intruder'; a renewed event from its parent gives build attempt 1 "
        "epoch 1 held by w1"
    )


def _raw(change: t.Change) -> tuple[str, bytes]:
    return refs.format_message(change.event), refs.subject_to_json(change.subject)


MESSAGE, RAW = _raw(t.created("f", "x", "new", at=T0, worker="w1"))


def _doc(**fields: object) -> bytes:
    doc = json.loads(RAW)
    doc.update(fields)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("ref", "message", "raw", "why"),
    [
        (
            "refs/frequency/subjects/f",
            MESSAGE,
            RAW,
            "not a subject's ref (refs/frequency/subjects/<factory>/<subject>)",
        ),
        (
            REF,
            "f/x: created -> new\n",
            RAW,
            "its message has no trailers: not a commit Frequency wrote",
        ),
        (
            REF,
            MESSAGE.replace("Freq-Event: created", "Freq-Event: exploded"),
            RAW,
            "Freq-Event: 'exploded' is not an event of a subject",
        ),
        (
            REF,
            MESSAGE.replace("Freq-Worker: w1\n", ""),
            RAW,
            "its message has no Freq-Worker trailer",
        ),
        (
            REF,
            MESSAGE.replace("Freq-Subject: x", "Freq-Subject: y"),
            RAW,
            "its trailers name f/y, not f/x",
        ),
        (
            REF,
            MESSAGE.replace("created -> new", "created -> done", 1),
            RAW,
            "its first line 'f/x: created -> done' is not what its trailers say "
            "('f/x: created -> new')",
        ),
        (REF, MESSAGE, None, "its tree has no subject.json"),
        (
            REF,
            MESSAGE,
            b"{not json",
            "its subject.json is not JSON (Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1))",
        ),
        (REF, MESSAGE, b"[1]", "its subject.json is not a JSON object"),
        (
            REF,
            MESSAGE,
            _doc(version=2),
            "its subject.json has format version 2; this Frequency reads version 1",
        ),
        (
            REF,
            MESSAGE,
            _doc(state=None).replace(b'"state": null, ', b""),
            "its subject.json has no field 'state'",
        ),
        (
            REF,
            MESSAGE,
            _doc(epoch="high"),
            "its subject.json is malformed (invalid literal for int() with base 10: 'high')",
        ),
        (REF, MESSAGE, _doc(subject="y"), "its subject.json is f/y's, not f/x's"),
    ],
)
def test_malformed_commits_are_named(ref: str, message: str, raw: bytes | None, why: str) -> None:
    """Each way a commit can fail to be Frequency's, in one line."""
    assert succession.read(ref, message, raw) == why


def test_freq_to_must_match_the_subject() -> None:
    """A move whose trailer names another state than its subject.json holds."""
    new = _history()[0].subject
    moved = t.moved(new, state="built", at=_at(1), by="ana", reason="x")
    forged = _forged(moved, state="done")
    assert _check(new, forged) == "Freq-To is 'built', but its subject.json is in 'done'"


def test_event_without_its_inputs_is_refused() -> None:
    """A failure of another attempt than the claim's, a renewal with no claim to renew."""
    hist = _history()
    claimed = hist[CLAIM].subject
    fail = _fail(claimed, BUILD, 1, 4)
    forged = replace(fail, event=replace(fail.event, attempt=7))
    assert _check(claimed, forged) == (
        "a failed event cannot follow its parent: it records build attempt 7 epoch 1, but the "
        "claim is build attempt 1 epoch 1 held by w1"
    )
    new = hist[0].subject
    renew = t.renewed(claimed, at=_at(5), ttl=TTL, worker="w1")
    assert _check(new, renew) == "a renewed event cannot follow its parent: f/x has no claim"


def test_an_event_is_judged_by_its_own_kind() -> None:
    """A claim's subject.json recorded under a renewal's trailers is judged as a renewal."""
    rec = _records()[CLAIM]
    ev: Event = replace(rec.event, kind=EventKind.RENEWED)
    parent = _records()[0].subject
    assert succession.check(parent, rec.subject, ev, factory=F) == (
        "a renewed event cannot follow its parent: f/x has no claim"
    )


def _at_kind(kind: EventKind, nth: int = 0) -> tuple[Subject, t.Change]:
    """The parent of the nth commit of `kind` in the history, and that commit's change."""
    hist = _history()
    i = _index(kind, nth)
    return _record(hist[i - 1]).subject, hist[i]


def _with_event(change: t.Change, **fields: object) -> t.Change:
    return replace(change, event=replace(change.event, **fields))


def test_forged_claims_and_chains() -> None:
    """A claim whose epoch is below its parent's or not the subject's, a chained claim whose
    Freq-Claims is malformed or names another epoch, a claim of queued work."""
    parent, claim = _at_kind(EventKind.CLAIMED)
    c = claim.subject.claim
    assert c is not None
    low = _forged(claim, claim=replace(c, epoch=-1))
    assert _check(parent, low) == "its claim's epoch -1 is below its parent's epoch 0"
    odd = _forged(claim, claim=replace(c, epoch=5))
    assert _check(parent, odd) == "its claim has epoch 5, but the subject has epoch 1"
    hist = _history()
    j = next(k for k, ch in enumerate(hist) if ch.event.next_claim)
    before = _record(hist[j - 1]).subject
    malformed = _with_event(hist[j], next_claim="review twice")
    assert _check(before, malformed) == (
        "Freq-Claims 'review twice' is not `<step> attempt <n> epoch <n>`"
    )
    assert _check(before, malformed, factory=None) == (
        "a chained event cannot follow its parent: Freq-Claims 'review twice' is not "
        "`<step> attempt <n> epoch <n>`"
    )
    assert _check(before, _with_event(hist[j], next_claim="review attempt 1 epoch 9")) == (
        "a chained event cannot follow its parent: Freq-Claims names epoch 9, the claim's is 7"
    )
    assert _check(before, _with_event(hist[j], next_claim="ghost attempt 1 epoch 7")) == (
        "factory 'f' has no step 'ghost' (Freq-Claims)"
    )
    queued_parent, queued = _at_kind(EventKind.QUEUED)
    waiting = queued.subject
    claim_again = t.claimed(waiting, step="ship", attempt=2, worker="w", at=_at(80), ttl=TTL)
    assert _check(waiting, claim_again) == (
        "a claimed event cannot follow its parent: its work waits in the merge queue"
    )
    elsewhere = _with_event(queued, to_state="failed")
    assert _check(queued_parent, elsewhere) == (
        "ship cannot move it from 'approved' to 'failed' (a success of it enters done)"
    )
    assert _check(queued_parent, elsewhere, factory=None) == (
        "a queued event cannot follow its parent: Freq-To is 'failed', its entry's 'done'"
    )


def test_forged_landings_and_failures_of_them() -> None:
    """A merge-queue entry no rule gives, a landing failure of another attempt."""
    parent, moved = _at_kind(EventKind.MOVED)
    with_entry = _forged(
        moved, landing=_landing(_history()[_index(EventKind.CLAIMED, 7)].subject, 1)
    )
    assert _check(parent, with_entry) == (
        "it has a merge-queue entry that a moved event from its parent does not give"
    )
    fparent, land_failed = _at_kind(EventKind.FAILED, 4)
    assert land_failed.event.target == "main"
    assert _check(fparent, _with_event(land_failed, attempt=3)) == (
        "a land failed event cannot follow its parent: it records ship attempt 3, but the "
        "queued work is ship attempt 1"
    )


def test_forged_repairs() -> None:
    """A repair keeps its state, ends any claim, raises the epoch, names what was missing."""
    parent, repair = _at_kind(EventKind.REPAIRED)
    assert _check(parent, _with_event(repair, from_state="new")) == (
        "a repair's Freq-From is 'new', but it restores 'approved'"
    )
    assert _check(parent, _with_event(repair, missing="")) == (
        "a repaired event cannot follow its parent: a repair names what was missing (Freq-Missing)"
    )
    assert parent.claim is not None
    held = replace(parent.claim, epoch=repair.subject.epoch)
    assert _check(parent, _forged(repair, claim=held)) == (
        "a repaired event cannot follow its parent: a repair ends any claim, but this one holds one"
    )
    assert _check(parent, _forged(repair, epoch=parent.epoch)) == (
        f"a repaired event cannot follow its parent: a repair raises the epoch above "
        f"{parent.epoch}, but it is {parent.epoch}"
    )


def test_a_step_gone_from_the_configuration() -> None:
    """A failure of a step no longer configured is parked where it is (repair.py), never
    moved; a success of one is refused."""
    parent, parked = _at_kind(EventKind.PARKED)
    without = replace(F, steps=(BUILD, GATE, SHIP))
    assert _check(parent, parked, factory=without) is None
    away = t.parked(parent, entry="f#1", on_terminal="done", at=_at(90), worker="w")
    assert _check(parent, away, factory=without) == (
        "parking it cannot move it from 'built' to 'done'"
    )
