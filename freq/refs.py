"""Pure formats of state in git: ref names, commit messages with trailers, subject.json.

Imports only the standard library and freq.model / freq.errors: no dulwich, no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from freq.errors import CorruptState, InvalidName
from freq.model import NAME_PATTERN, NO_DOUBLE_DOT, Autonomy, FailureKind, name_problem
from freq.runtime import (
    AgentUsage,
    Approval,
    Claim,
    Control,
    CostSource,
    Emitted,
    Event,
    EventKind,
    Landing,
    LastError,
    Lock,
    Subject,
)

ROOT = "refs/frequency/"
SUBJECTS = ROOT + "subjects/"
LOCKS = ROOT + "locks/"
DLQ = ROOT + "dlq/"
CONTROL = ROOT + "control/"
ARCHIVE = ROOT + "archive/"
SALVAGE = ROOT + "salvage/"  # uncommitted work of dead attempts' worktrees

SUBJECT_FILE = "subject.json"
OUTPUT_FILE = "output.log"
FORMAT_VERSION = 1


def check_name(kind: str, name: str) -> str:
    """Return `name` if it can be one ref component, else raise InvalidName."""
    problem = name_problem(name)
    if problem:
        raise InvalidName(f"{kind} name {name!r} {problem}")
    return name


def subject_ref(factory: str, subject: str) -> str:
    """`refs/frequency/subjects/<factory>/<subject>`."""
    return f"{SUBJECTS}{check_name('factory', factory)}/{check_name('subject', subject)}"


def archive_ref(factory: str) -> str:
    """`refs/frequency/archive/<factory>`: the factory's finished subjects, folded."""
    return f"{ARCHIVE}{check_name('factory', factory)}"


def archive_shard(name: str) -> str:
    """The folder of the archive's tree that holds subject `name`: `ab/c`, the first three
    hex digits of its SHA-1 on two levels, so that 100,000 subjects make 4,096 folders of
    about 25 each (a fold rewrites small trees; a lookup reads a small index)."""
    digest = hashlib.sha1(name.encode(), usedforsecurity=False).hexdigest()
    return f"{digest[:2]}/{digest[2]}"


def parse_subject_ref(ref: str) -> tuple[str, str] | None:
    """(factory, subject) of a subject ref, or None when the ref is not one of ours: two
    components after SUBJECTS, each a name name_problem accepts, in one match (a snapshot
    reads every subject ref this way)."""
    if not ref.startswith(SUBJECTS):
        return None
    m = _SUBJECT_PATH.fullmatch(ref, len(SUBJECTS))
    return None if m is None else (m[1], m[2])


# <factory>/<subject>, each a valid name (freq.model.name_problem's rules as one pattern)
_SUBJECT_PATH = re.compile(f"{NO_DOUBLE_DOT}({NAME_PATTERN})/({NAME_PATTERN})")


# ---------------------------------------------------------------- time


def iso(t: datetime) -> str:
    """UTC ISO-8601 with milliseconds and a Z: `2026-01-01T00:00:00.000Z`."""
    if t.tzinfo is not UTC:
        t = t.astimezone(UTC)
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:"
        f"{t.second:02d}.{t.microsecond // 1000:03d}Z"
    )


def parse_iso(text: str) -> datetime:
    """Inverse of iso(); accepts any ISO-8601 with an offset or Z."""
    t = datetime.fromisoformat(text)  # Python 3.11 reads a trailing Z as UTC
    return t if t.tzinfo is UTC else t.astimezone(UTC)


# ---------------------------------------------------------------- commit messages

TRAILER_ORDER = (
    ("Freq-Event", "kind"),
    ("Freq-Factory", "factory"),
    ("Freq-Subject", "subject"),
    ("Freq-Step", "step"),
    ("Freq-From", "from_state"),
    ("Freq-To", "to_state"),
    ("Freq-Attempt", "attempt"),
    ("Freq-Epoch", "epoch"),
    ("Freq-Worker", "worker"),
    ("Freq-Duration-Ms", "duration_ms"),
    ("Freq-Exit", "exit_code"),
    ("Freq-Failure", "failure"),
    ("Freq-Dlq", "dlq"),
    ("Freq-Claims", "next_claim"),
    ("Freq-Missing", "missing"),
    ("Freq-Lost", "lost"),
    ("Freq-Restored-From", "restored_from"),
    ("Freq-Target", "target"),
    ("Freq-Branch", "branch"),
    ("Freq-Commit", "commit"),
    ("Freq-Landed", "landed"),
    ("Freq-Conflict", "conflict"),
)


# an agent attempt's trailers (SPEC §3), from Event.usage
USAGE_TRAILERS = (
    ("Freq-Agent", "agent"),
    ("Freq-Model", "model"),
    ("Freq-Tokens-In", "tokens_in"),
    ("Freq-Tokens-Out", "tokens_out"),
    ("Freq-Tokens-Cached", "tokens_cached"),
    ("Freq-Cost-Usd", "cost_usd"),
    ("Freq-Cost-Source", "cost_source"),
    ("Freq-Session", "session"),
)


def format_usd(value: float) -> str:
    """A cost as its trailer writes it: six decimals, no exponent (`0.012345`)."""
    return f"{value:.6f}"


def usage_lines(usage: AgentUsage) -> list[str]:
    """The Freq-Agent… trailer lines of an agent run's usage."""
    lines = []
    for key, attr in USAGE_TRAILERS:
        value = getattr(usage, attr)
        if value is None:
            continue
        if isinstance(value, CostSource):
            value = value.value
        elif isinstance(value, float):
            value = format_usd(value)
        lines.append(f"{key}: {_one_line(str(value))}")
    return lines


def usage_from_trailers(trailers: Mapping[str, str]) -> AgentUsage | None:
    """The AgentUsage an attempt's commit recorded (None: not an agent attempt's end).
    Values that do not parse are left out, never guessed."""
    agent = trailers.get("Freq-Agent")
    if not agent:
        return None

    def number(key: str, kind: Callable[[str], Any]) -> Any:
        try:
            return kind(trailers[key])
        except (KeyError, ValueError):
            return None

    source = trailers.get("Freq-Cost-Source")
    return AgentUsage(
        agent=agent,
        model=trailers.get("Freq-Model"),
        tokens_in=number("Freq-Tokens-In", int),
        tokens_out=number("Freq-Tokens-Out", int),
        tokens_cached=number("Freq-Tokens-Cached", int),
        cost_usd=number("Freq-Cost-Usd", float),
        cost_source=CostSource(source) if source in ("reported", "estimated") else None,
        session=trailers.get("Freq-Session"),
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def subject_line(event: Event) -> str:
    """The first line of an event commit (SPEC §3 for transitions)."""
    who = f"{event.factory}/{event.subject}"
    k = event.kind
    if k is EventKind.TRANSITIONED:
        return f"{who}: {event.step} {event.from_state} -> {event.to_state}"
    if k is EventKind.CREATED:
        return f"{who}: created -> {event.to_state}"
    if k is EventKind.MOVED:
        return f"{who}: manual {event.from_state} -> {event.to_state}"
    if k is EventKind.FAILED:
        what = f"exit {event.exit_code}" if event.exit_code is not None else "no exit code"
        return f"{who}: {event.step} failed in {event.from_state} ({what})"
    if k is EventKind.PARKED:
        moved = f" -> {event.to_state}" if event.to_state != event.from_state else ""
        return f"{who}: {event.step} parked in dead-letter queue{moved}"
    if k is EventKind.REQUEUED:
        return f"{who}: requeued {event.from_state} -> {event.to_state}"
    if k is EventKind.CLAIMED:
        return f"{who}: {event.step} claimed (attempt {event.attempt})"
    if k is EventKind.REPAIRED:
        return f"{who}: repaired in {event.to_state} (history broken, {event.lost} lost)"
    if k is EventKind.RENEWED:
        return f"{who}: {event.step} lease renewed (attempt {event.attempt})"
    if k is EventKind.QUEUED:
        return f"{who}: {event.step} queued to land on {event.target} (attempt {event.attempt})"
    return f"{who}: {event.step} released (attempt {event.attempt})"


def format_message(event: Event) -> str:
    """Full commit message: subject line, optional reason paragraph, trailers."""
    lines = [subject_line(event), ""]
    if event.reason:
        lines += [event.reason.strip(), ""]
    if event.details:
        lines += [event.details.strip("\n"), ""]
    for key, attr in TRAILER_ORDER:
        value = getattr(event, attr)
        if value is None:
            continue
        if isinstance(value, EventKind):
            value = value.value
        lines.append(f"{key}: {_one_line(str(value))}")
    if event.usage is not None:
        lines += usage_lines(event.usage)
    if event.reason:
        lines.append(f"Freq-Reason: {_one_line(event.reason)}")
    lines.append(f"Freq-At: {iso(event.at)}")  # milliseconds: commit dates have seconds
    return "\n".join(lines) + "\n"


_INT_TRAILERS = frozenset(("attempt", "epoch", "duration_ms", "exit_code"))
_REQUIRED = ("Freq-Event", "Freq-Factory", "Freq-Subject", "Freq-Worker", "Freq-At")


def event_from_trailers(trailers: Mapping[str, str]) -> Event:
    """The Event a subject commit's trailers record: format_message's inverse, less what
    only the message body holds (a reason's line breaks, a repair's details). ValueError
    naming the first trailer that is missing or malformed."""
    for key in _REQUIRED:
        if not trailers.get(key):
            raise ValueError(f"its message has no {key} trailer")
    fields: dict[str, Any] = {}
    for key, attr in TRAILER_ORDER:
        value = trailers.get(key)
        if value is None:
            continue
        if attr == "kind":
            try:
                fields[attr] = EventKind(value)
            except ValueError:
                raise ValueError(f"{key}: {value!r} is not an event of a subject") from None
        elif attr in _INT_TRAILERS:
            try:
                fields[attr] = int(value)
            except ValueError:
                raise ValueError(f"{key}: {value!r} is not a whole number") from None
        else:
            fields[attr] = value
    try:
        at = parse_iso(trailers["Freq-At"])
    except ValueError:
        raise ValueError(f"Freq-At: {trailers['Freq-At']!r} is not a time") from None
    return Event(
        **fields, at=at, reason=trailers.get("Freq-Reason"), usage=usage_from_trailers(trailers)
    )


def parse_trailers(message: str) -> dict[str, str]:
    """The `Key: value` trailers of the message's last paragraph."""
    paragraphs = [p for p in message.strip().split("\n\n") if p.strip()]
    if len(paragraphs) < 2:
        return {}
    out: dict[str, str] = {}
    for line in paragraphs[-1].splitlines():
        key, sep, value = line.partition(": ")
        if not sep or " " in key:
            return {}
        out[key] = value
    return out


# ---------------------------------------------------------------- subject.json


def _claim_to_json(c: Claim) -> dict[str, Any]:
    return {
        "holder": c.holder,
        "step": c.step,
        "attempt": c.attempt,
        "epoch": c.epoch,
        "claimed_at": iso(c.claimed_at),
        "expires_at": iso(c.expires_at),
        **({"touches": list(c.touches)} if c.touches else {}),
        **({"slots_at": c.slots_at} if c.slots_at is not None else {}),
    }


def _landing_to_json(x: Landing) -> dict[str, Any]:
    return {
        "step": x.step,
        "attempt": x.attempt,
        "to_state": x.to_state,
        "target": x.target,
        "branch": x.branch,
        "commit": x.commit,
        "base": x.base,
        "queued_at": iso(x.queued_at),
        "priority": x.priority,
        "exit_code": x.exit_code,
        "duration_ms": x.duration_ms,
        **({"touches": list(x.touches)} if x.touches else {}),
    }


def _landing_from_json(d: Mapping[str, Any]) -> Landing:
    return Landing(
        step=str(d["step"]),
        attempt=int(d["attempt"]),
        to_state=str(d["to_state"]),
        target=str(d["target"]),
        branch=str(d["branch"]),
        commit=str(d["commit"]),
        base=str(d["base"]),
        queued_at=parse_iso(d["queued_at"]),
        priority=int(d.get("priority") or 0),
        exit_code=None if d.get("exit_code") is None else int(d["exit_code"]),
        duration_ms=None if d.get("duration_ms") is None else int(d["duration_ms"]),
        touches=tuple(str(t) for t in d.get("touches") or ()),
    )


def _error_to_json(e: LastError) -> dict[str, Any]:
    return {
        "step": e.step,
        "attempt": e.attempt,
        "exit_code": e.exit_code,
        "kind": e.kind.value,
        "reason": e.reason,
        "summary": e.summary,
        "fingerprint": e.fingerprint,
        "repeats": e.repeats,
        "final": e.final,
        "dlq": e.dlq,
        "rule": e.rule,
        "question": e.question,
        "duration_ms": e.duration_ms,
        "at": iso(e.at),
        # an agent attempt's session: written only when there is one
        **({"session": e.session} if e.session else {}),
        **({"session_totals": list(e.session_totals)} if e.session_totals else {}),
        **({"conflict": list(e.conflict)} if e.conflict else {}),
    }


def subject_to_json(s: Subject) -> bytes:
    """Serialise a Subject as the canonical subject.json (sorted keys, one trailing newline)."""
    doc: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "factory": s.factory,
        "subject": s.name,
        "state": s.state,
        "data": dict(s.data),
        "epoch": s.epoch,
        "attempt": s.attempt,
        "claim": _claim_to_json(s.claim) if s.claim else None,
        "not_before": iso(s.not_before) if s.not_before else None,
        "last_error": _error_to_json(s.last_error) if s.last_error else None,
        "parked": s.parked,
        "marks": dict(s.marks),
        "emitted": [
            {"factory": e.factory, "state": e.state, "name": e.name, "data": dict(e.data)}
            for e in s.emitted
        ],
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
        "entered_at": iso(s.entered_at),
        **({"diagnosis": s.diagnosis} if s.diagnosis else {}),
        **({"landing": _landing_to_json(s.landing)} if s.landing else {}),
    }
    return (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


_EMPTY: Mapping[str, str] = MappingProxyType({})


def _strings(d: Any) -> Mapping[str, str]:
    """A read-only str → str mapping of a JSON object (one shared value when empty)."""
    if not d:
        return _EMPTY
    if isinstance(d, dict) and all(type(v) is str for v in d.values()):
        return MappingProxyType(d)  # parsed JSON: its keys are strings, and it is ours alone
    return MappingProxyType({str(k): str(v) for k, v in d.items()})


def _totals(value: Any) -> tuple[int, int, int] | None:
    if not value:
        return None
    a, b, c = (int(x) for x in value)
    return a, b, c


def subject_from_doc(doc: Mapping[str, Any], *, where: str) -> Subject:
    """Build a Subject from parsed subject.json; CorruptState names `where` on any defect.
    `doc` must be a fresh parse the caller leaves alone: its `data` objects are kept."""
    try:
        claim = doc.get("claim")
        err = doc.get("last_error")
        return Subject(
            factory=str(doc["factory"]),
            name=str(doc["subject"]),
            state=str(doc["state"]),
            data=_strings(doc.get("data")),
            epoch=int(doc.get("epoch", 0)),
            attempt=int(doc.get("attempt", 0)),
            claim=Claim(
                holder=str(claim["holder"]),
                step=str(claim["step"]),
                attempt=int(claim["attempt"]),
                epoch=int(claim["epoch"]),
                claimed_at=parse_iso(claim["claimed_at"]),
                expires_at=parse_iso(claim["expires_at"]),
                touches=tuple(str(t) for t in claim.get("touches") or ()),
                slots_at=None if claim.get("slots_at") is None else int(claim["slots_at"]),
            )
            if claim
            else None,
            not_before=parse_iso(doc["not_before"]) if doc.get("not_before") else None,
            last_error=LastError(
                step=str(err["step"]),
                attempt=int(err["attempt"]),
                exit_code=None if err.get("exit_code") is None else int(err["exit_code"]),
                kind=FailureKind(err["kind"]),
                reason=str(err["reason"]),
                summary=str(err.get("summary", "")),
                fingerprint=str(err.get("fingerprint", "")),
                repeats=int(err.get("repeats", 1)),
                final=bool(err.get("final", False)),
                dlq=err.get("dlq"),
                rule=str(err.get("rule", "")),
                question=err.get("question"),
                duration_ms=err.get("duration_ms"),
                at=parse_iso(err["at"]),
                session=err.get("session"),
                session_totals=_totals(err.get("session_totals")),
                conflict=tuple(str(p) for p in err.get("conflict") or ()),
            )
            if err
            else None,
            parked=doc.get("parked"),
            marks=_strings(doc.get("marks")),
            emitted=()
            if not doc.get("emitted")
            else tuple(
                Emitted(
                    factory=str(e["factory"]),
                    state=str(e["state"]),
                    name=str(e["name"]),
                    data=_strings(e.get("data")),
                )
                for e in doc.get("emitted") or ()
            ),
            created_at=parse_iso(doc["created_at"]),
            updated_at=parse_iso(doc["updated_at"]),
            entered_at=parse_iso(doc.get("entered_at") or doc["updated_at"]),
            diagnosis=doc.get("diagnosis"),
            landing=_landing_from_json(doc["landing"]) if doc.get("landing") else None,
        )
    except KeyError as exc:
        raise CorruptState(f"{where}: subject.json has no field {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise CorruptState(f"{where}: subject.json is malformed ({exc!s})") from None


def subject_from_json(raw: bytes, *, where: str) -> Subject:
    """Parse subject.json bytes; CorruptState names `where` when they are not ours."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptState(f"{where}: subject.json is not JSON ({exc!s})") from None
    if not isinstance(doc, dict):
        raise CorruptState(f"{where}: subject.json is not a JSON object")
    return subject_from_doc(doc, where=where)


# ---------------------------------------------------------------- locks, caps, control

LOCK_FILE = "lock.json"
CONTROL_FILE = "control.json"
CAPS = ROOT + "caps/"


def lock_ref(name: str) -> str:
    """`refs/frequency/locks/<name>`; `:` (as in `branch:main`) is stored as `%3A`."""
    for part in name.split(":"):
        check_name("lock", part)
    return LOCKS + name.replace(":", "%3A")


def lock_name(ref: str) -> str:
    """Inverse of lock_ref."""
    return ref[len(LOCKS) :].replace("%3A", ":")


def control_ref(factory: str) -> str:
    """`refs/frequency/control/<factory>`."""
    return CONTROL + check_name("factory", factory)


_HEX = frozenset("0123456789abcdef")


def parse_oid(text: str) -> str | None:
    """A full object id as git hands it to hooks (SHA-1 or SHA-256 hex), None for all
    zeros (a ref that is created or deleted); ValueError for anything else."""
    if len(text) not in (40, 64) or not _HEX.issuperset(text):
        raise ValueError(f"{text!r} is not a full object id")
    return None if set(text) == {"0"} else text


def is_ephemeral(ref: str) -> bool:
    """A ref that Frequency points at any commit and deletes by design, so it keeps no
    history of its own: a cap slot (it points at its holder's claim commit, freq/caps.py)
    and a salvage ref (a dead attempt's saved work, written again by each sweep)."""
    return ref.startswith((CAPS, SALVAGE))


def caps_ref(*scope: str) -> str:
    """`refs/frequency/caps/<scope...>`: the folder of one cap's slot refs (global,
    factory, step, WIP state); see locks.Caps."""
    return CAPS + "/".join(check_name("cap scope", s) for s in scope)


def lock_to_json(lock: Lock) -> bytes:
    """Canonical lock.json."""
    doc = {
        "name": lock.name,
        "holder": lock.holder,
        "subject": lock.subject,
        "epoch": lock.epoch,
        "acquired_at": iso(lock.acquired_at),
        "ttl_seconds": lock.ttl.total_seconds(),
        "expires_at": iso(lock.expires_at),
        "released": lock.released,
    }
    return (json.dumps(doc, sort_keys=True, indent=1) + "\n").encode()


def lock_from_json(raw: bytes, *, where: str) -> Lock:
    """Parse lock.json; CorruptState naming `where` when it is not ours."""
    try:
        doc = json.loads(raw)
        return Lock(
            name=str(doc["name"]),
            holder=str(doc["holder"]),
            subject=str(doc.get("subject", "")),
            epoch=int(doc.get("epoch", 0)),
            acquired_at=parse_iso(doc["acquired_at"]),
            ttl=timedelta(seconds=float(doc["ttl_seconds"])),
            expires_at=parse_iso(doc["expires_at"]),
            released=bool(doc.get("released", False)),
        )
    except KeyError as exc:
        raise CorruptState(f"{where}: lock.json has no field {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise CorruptState(f"{where}: lock.json is malformed ({exc!s})") from None


def control_to_json(c: Control) -> bytes:
    """Canonical control.json."""
    doc = {
        "factory": c.factory,
        "paused": c.paused,
        "autonomy": c.autonomy.value if c.autonomy else None,
        "approvals": [
            {
                "subject": a.subject,
                "step": a.step,
                "entered_at": iso(a.entered_at),
                "by": a.by,
                "at": iso(a.at),
            }
            for a in c.approvals
        ],
        "by": c.by,
        "why": c.why,
        "at": iso(c.at) if c.at else None,
    }
    return (json.dumps(doc, sort_keys=True, indent=1) + "\n").encode()


def control_from_json(raw: bytes, *, where: str) -> Control:
    """Parse control.json; CorruptState naming `where` when it is not ours."""
    try:
        doc = json.loads(raw)
        return Control(
            factory=str(doc["factory"]),
            paused=bool(doc.get("paused", False)),
            autonomy=Autonomy(doc["autonomy"]) if doc.get("autonomy") else None,
            approvals=tuple(
                Approval(
                    subject=str(a["subject"]),
                    step=str(a["step"]),
                    entered_at=parse_iso(a["entered_at"]),
                    by=str(a.get("by", "")),
                    at=parse_iso(a["at"]),
                )
                for a in doc.get("approvals") or ()
            ),
            by=str(doc.get("by", "")),
            why=str(doc.get("why", "")),
            at=parse_iso(doc["at"]) if doc.get("at") else None,
        )
    except KeyError as exc:
        raise CorruptState(f"{where}: control.json has no field {exc.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise CorruptState(f"{where}: control.json is malformed ({exc!s})") from None


def control_message(factory: str, what: str, *, by: str, why: str, at: datetime) -> str:
    """Commit message of a control change."""
    lines = [f"{factory}: {what}", ""]
    if why:
        lines += [why.strip(), ""]
    lines += ["Freq-Event: control", f"Freq-Factory: {factory}", f"Freq-By: {_one_line(by)}"]
    if why:
        lines.append(f"Freq-Reason: {_one_line(why)}")
    return "\n".join(lines) + "\n"


def lock_message(
    lock: Lock, what: str, *, previous: Lock | None = None, reason: str | None = None
) -> str:
    """Commit message of a lock event: acquire, renew, release, steal, break."""
    lines = [f"lock {lock.name}: {what} by {lock.holder}", ""]
    if reason:
        lines += [reason.strip(), ""]
    lines += [
        f"Freq-Event: lock-{what}",
        f"Freq-Lock: {lock.name}",
        f"Freq-Holder: {lock.holder}",
        f"Freq-Subject: {lock.subject}",
        f"Freq-Epoch: {lock.epoch}",
        f"Freq-Expires: {iso(lock.expires_at)}",
    ]
    if previous is not None:
        lines.append(f"Freq-Previous-Holder: {previous.holder}")
    if reason:
        lines.append(f"Freq-Reason: {_one_line(reason)}")
    return "\n".join(lines) + "\n"


def repair_message(
    head: str,
    *,
    event: str,
    ids: tuple[tuple[str, str], ...],
    by: str,
    missing: tuple[str, ...],
    lost: int,
    restored_from: str | None,
    reason: str,
    details: str = "",
) -> str:
    """Commit message of a repaired lock, control or dead-letter ref (`head`: `lock deploy`;
    `ids`: the trailers naming it). A subject's repair is format_message of its event."""
    n = f"{lost} commit{'s' if lost != 1 else ''}"
    lines = [f"{head}: repaired (history broken, {n} lost)", "", reason.strip(), ""]
    if details:
        lines += [details.strip("\n"), ""]
    lines += [f"Freq-Event: {event}", *(f"{k}: {_one_line(v)}" for k, v in ids)]
    lines += [f"Freq-Missing: {' '.join(missing)}", f"Freq-Lost: {n}"]
    if restored_from:
        lines.append(f"Freq-Restored-From: {restored_from}")
    lines += [f"Freq-By: {_one_line(by)}", f"Freq-Reason: {_one_line(reason)}"]
    return "\n".join(lines) + "\n"
