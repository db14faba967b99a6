"""The dead-letter queue: an append-only chain of commits per factory (SPEC §3, §5).

Must not import click or subprocess; writes only through store. `refs/frequency/dlq/<F>`
gets one commit per entry, each the child of the last, moved by compare-and-swap and never
rewritten, so `git log refs/frequency/dlq/<F>` is the audit trail. An entry commit's tree
holds `entry.json` and `output.log` (the attempt's last 200 lines). A requeue is itself an
entry (kind `requeue`) naming the entry it requeues, and so is a root cause found by
`dlq diagnose` (kind `diagnosis`, its text in `output.log`). Entry ids are `<factory>#<seq>`.

Appending is idempotent per failure: an entry names the subject commit that recorded the
final failure, and `append` returns the existing entry when that commit is already in the
queue, so a worker killed between writing the entry and parking the subject can be
repaired by any later worker without a duplicate.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from freq import refs
from freq.clock import Clock
from freq.errors import AlreadyRequeued, CorruptState, Hint, RefConflict, UnknownEntry
from freq.runtime import AgentUsage
from freq.store import Store, problem_line

ENTRY_FILE = "entry.json"
KINDS = ("entry", "requeue", "diagnosis", "repair")  # what a queue's commits record
_CAS_ATTEMPTS = 50
_SCAN_LIMIT = 500  # entries looked back through for an idempotent append


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One dead-letter entry (or a requeue record), as read back from its commit."""

    id: str
    seq: int
    kind: str  # entry | requeue | diagnosis | repair (the queue's history broke: what was lost)
    factory: str
    subject: str
    at: datetime
    commit: str = ""
    step: str = ""
    attempt: int = 0
    state: str = ""
    exit_code: int | None = None
    duration_ms: int | None = None
    failure_class: str = ""
    reason: str = ""
    subject_commit: str = ""
    question: str | None = None
    requeues: str | None = None
    diagnoses: str | None = None  # a diagnosis: the entry whose root cause it gives
    agent: str | None = None  # a diagnosis: the agent that gave it
    usage: AgentUsage | None = None  # a diagnosis: what its run spent (trailers only)
    by: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    conflict: tuple[str, ...] = ()  # a landing that conflicted: the paths
    salvage: tuple[str, ...] = ()  # refs holding uncommitted work of the subject's dead attempts


def _to_json(e: Entry) -> bytes:
    doc = {
        "id": e.id,
        "seq": e.seq,
        "kind": e.kind,
        "factory": e.factory,
        "subject": e.subject,
        "at": refs.iso(e.at),
        "step": e.step,
        "attempt": e.attempt,
        "state": e.state,
        "exit_code": e.exit_code,
        "duration_ms": e.duration_ms,
        "class": e.failure_class,
        "reason": e.reason,
        "subject_commit": e.subject_commit,
        "question": e.question,
        "requeues": e.requeues,
        "by": e.by,
        **({"diagnoses": e.diagnoses, "agent": e.agent} if e.diagnoses else {}),
        **({"conflict": list(e.conflict)} if e.conflict else {}),
        **({"salvage": list(e.salvage)} if e.salvage else {}),
    }
    return (json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False) + "\n").encode()


def parse_entry(raw: bytes, commit: str, where: str) -> Entry:
    """An entry.json read back (`commit`: the entry's commit); CorruptState naming `where`
    when it is not one."""
    try:
        d = json.loads(raw)
        return Entry(
            id=str(d["id"]),
            seq=int(d["seq"]),
            kind=str(d["kind"]),
            factory=str(d["factory"]),
            subject=str(d["subject"]),
            at=refs.parse_iso(d["at"]),
            commit=commit,
            step=str(d.get("step") or ""),
            attempt=int(d.get("attempt") or 0),
            state=str(d.get("state") or ""),
            exit_code=d.get("exit_code"),
            duration_ms=d.get("duration_ms"),
            failure_class=str(d.get("class") or ""),
            reason=str(d.get("reason") or ""),
            subject_commit=str(d.get("subject_commit") or ""),
            question=d.get("question"),
            requeues=d.get("requeues"),
            diagnoses=d.get("diagnoses"),
            agent=d.get("agent"),
            by=str(d.get("by") or ""),
            conflict=tuple(str(p) for p in d.get("conflict") or ()),
            salvage=tuple(str(r) for r in d.get("salvage") or ()),
        )
    except KeyError as exc:
        raise CorruptState(f"{where}: entry.json has no field {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise CorruptState(f"{where}: entry.json is malformed ({exc!s})") from None


def entry_problem(factory: str, message: str, raw: bytes | None) -> str | None:
    """Why a commit with `message` and entry.json `raw` (None: its tree has none) is not a
    well-formed entry of `factory`'s queue, or None: its entry parses, belongs to that
    queue, has an id `<factory>#<seq>` and a known kind, and its trailers say the same."""
    if raw is None:
        return "its tree has no entry.json"
    try:
        e = parse_entry(raw, "", "-")
    except CorruptState as exc:
        return "its " + exc.message.removeprefix("-: ")
    if e.kind not in KINDS:
        return f"its entry's kind {e.kind!r} is not one of {', '.join(KINDS)}"
    if e.factory != factory:
        return f"its entry belongs to factory {e.factory!r}, not {factory!r}"
    if e.id != f"{factory}#{e.seq}":
        return f"its entry's id {e.id!r} is not {factory}#{e.seq}"
    trailers = refs.parse_trailers(message)
    for key, want in (
        ("Freq-Event", f"dlq-{e.kind}"),
        ("Freq-Dlq", e.id),
        ("Freq-Factory", factory),
    ):
        if trailers.get(key) != want:
            return f"its {key} trailer is {trailers.get(key)!r}; its entry.json says {want!r}"
    return None


def _message(e: Entry) -> str:
    if e.kind == "repair":
        raise ValueError("a repair record's message is written by its repair (mend)")
    if e.kind == "requeue":
        head = f"dlq {e.id}: requeue {e.requeues} ({e.factory}/{e.subject})"
    elif e.kind == "diagnosis":
        head = f"dlq {e.id}: diagnosis of {e.diagnoses} ({e.factory}/{e.subject})"
    else:
        head = (
            f"dlq {e.id}: {e.factory}/{e.subject} {e.step} attempt {e.attempt} "
            f"({e.failure_class}: {e.reason})"
        )
    lines = [head, ""]
    if e.question:
        lines += [f"Question: {e.question}", ""]
    if e.kind in ("requeue", "diagnosis") and e.reason:
        lines += [e.reason, ""]
    lines += [
        f"Freq-Event: dlq-{e.kind}",
        f"Freq-Dlq: {e.id}",
        f"Freq-Factory: {e.factory}",
        f"Freq-Subject: {e.subject}",
    ]
    if e.kind == "entry":
        lines += [
            f"Freq-Step: {e.step}",
            f"Freq-Attempt: {e.attempt}",
            f"Freq-Failure: {e.failure_class} ({' '.join(e.reason.split())})",
        ]
        if e.exit_code is not None:
            lines.append(f"Freq-Exit: {e.exit_code}")
    elif e.kind == "diagnosis":
        lines += [f"Freq-Diagnoses: {e.diagnoses}", f"Freq-By: {e.by}"]
        lines += refs.usage_lines(e.usage) if e.usage else [f"Freq-Agent: {e.agent}"]
    else:
        lines += [f"Freq-Requeues: {e.requeues}", f"Freq-By: {e.by}"]
    return "\n".join(lines) + "\n"


class Dlq:
    """Append, read and requeue dead-letter entries."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def entries(
        self, factory: str, *, limit: int | None = None, problems: list[str] | None = None
    ) -> Iterator[Entry]:
        """Entries of one factory's queue, newest first (first-parent chain). An entry that
        cannot be read is skipped and described in `problems`; a commit that is missing
        ends the walk there."""
        for item in self._chain(factory, limit):
            if isinstance(item, Entry):
                yield item
            elif problems is not None:
                problems.append(item)

    def _chain(self, factory: str, limit: int | None) -> Iterator[Entry | str]:
        """Each commit of the queue, newest first: its Entry, or why it cannot be read."""
        ref = refs.DLQ + refs.check_name("factory", factory)
        oid = self.store.read_ref(ref)
        n = 0
        while oid is not None and (limit is None or n < limit):
            n += 1
            try:
                commit = self.store.commit_at(oid, ref)
            except CorruptState as exc:
                yield problem_line(exc, "older entries not shown" if n > 1 else "")
                return
            try:
                yield parse_entry(self.store.doc_at(oid, ENTRY_FILE, ref), oid, ref)
            except CorruptState as exc:
                yield problem_line(exc)
            oid = commit.parents[0].decode() if commit.parents else None

    def waiting(self, factory: str, *, problems: list[str] | None = None) -> int:
        """How many entries of the queue have not been requeued: counted from the queue
        itself, so entries whose subject moved on (to `on_terminal`) count too. Commits that
        cannot be read are described in `problems`."""
        requeued: set[str] = set()
        n = 0
        for e in self.entries(factory, problems=problems):
            if e.kind == "requeue" and e.requeues:
                requeued.add(e.requeues)
            elif e.kind == "entry" and e.id not in requeued:
                n += 1
        return n

    def factories(self) -> list[str]:
        """Factories that have a dead-letter queue."""
        return sorted(ref[len(refs.DLQ) :] for ref in self.store.list_refs(refs.DLQ))

    def append(self, entry: Entry, output: bytes) -> Entry:
        """Append `entry` (its id and seq are assigned here); idempotent per subject_commit."""
        ref = refs.DLQ + refs.check_name("factory", entry.factory)
        for _ in range(_CAS_ATTEMPTS):
            tip = self.store.read_ref(ref)
            if tip is not None:
                self.store.commit_at(tip, ref)  # never chain onto a missing commit
            last: Entry | None = None
            unreadable = 0  # newer than `last`: each still took a number
            for i, e in enumerate(self._chain(entry.factory, _SCAN_LIMIT)):
                if isinstance(e, str):
                    unreadable += last is None
                    continue
                if last is None:
                    last = e
                if entry.kind == "entry" and e.subject_commit == entry.subject_commit:
                    return e
                if entry.kind == "requeue" and e.requeues == entry.requeues:
                    raise AlreadyRequeued(f"{entry.requeues} was already requeued as {e.id}")
                if i + 1 >= _SCAN_LIMIT:
                    break
            seq = (last.seq if last else 0) + unreadable + 1
            new = Entry(**{**_fields(entry), "id": f"{entry.factory}#{seq}", "seq": seq})
            files = {ENTRY_FILE: _to_json(new), refs.OUTPUT_FILE: output}
            try:
                oid = self.store.write_doc(ref, files, _message(new), at=new.at, expected=tip)
            except RefConflict:
                continue
            return Entry(**{**_fields(new), "commit": oid})
        raise RefConflict(ref)

    def mend(self, entry: Entry, message: str, *, tip: str, base: str | None) -> Entry:
        """Write a `repair` record (`entry`, its id and seq chosen by the caller above every
        one the queue held) on top of `base`, the newest commit below which the queue's
        chain is intact (None: a new root), and move the queue from its broken `tip` to it
        by compare-and-swap. The entries between are no longer in the queue; `message` says
        which (freq.chains). RefConflict when the queue moved meanwhile."""
        ref = refs.DLQ + refs.check_name("factory", entry.factory)
        files = {ENTRY_FILE: _to_json(entry), refs.OUTPUT_FILE: b""}
        oid = self.store.prepare_doc(files, message, at=entry.at, parent=base)
        self.store.swap(ref, oid, expected=tip)
        return Entry(**{**_fields(entry), "commit": oid})

    def find(self, entry_id: str) -> Entry:
        """An entry by `factory#N` or by (a prefix of) its commit id."""
        if "#" in entry_id:
            factory, _, num = entry_id.partition("#")
            if not num.isdigit():
                raise UnknownEntry(f"no dead-letter entry {entry_id!r} (ids look like build#3)")
            for e in self.entries(factory):
                if e.seq == int(num):
                    return e
                if e.seq < int(num):
                    break
            raise UnknownEntry(
                f"no dead-letter entry {entry_id!r}",
                hint=Hint(text="see", command=("dlq", "list", factory)),
            )
        if len(entry_id) >= 4 and all(c in "0123456789abcdef" for c in entry_id.lower()):
            for factory in self.factories():
                for e in self.entries(factory):
                    if e.commit.startswith(entry_id.lower()):
                        return e
        raise UnknownEntry(
            f"no dead-letter entry {entry_id!r}",
            hint=Hint(text="ids look like build#3 or a commit id; see", command=("dlq", "list")),
        )

    def output(self, entry: Entry) -> str:
        """The output tail kept with an entry."""
        raw = self.store.read_output(entry.commit) or b""
        return raw.decode("utf-8", "replace")

    def diagnosis_of(self, entry: Entry) -> Entry | None:
        """The newest diagnosis of `entry`, if any."""
        for e in self.entries(entry.factory, limit=_SCAN_LIMIT):
            if e.kind == "diagnosis" and e.diagnoses == entry.id:
                return e
            if e.seq <= entry.seq:
                break
        return None

    def requeue_of(self, entry: Entry) -> Entry | None:
        """The requeue entry that requeued `entry`, if any."""
        for e in self.entries(entry.factory, limit=_SCAN_LIMIT):
            if e.kind == "requeue" and e.requeues == entry.id:
                return e
            if e.seq <= entry.seq:
                break
        return None


def _fields(e: Entry) -> dict[str, Any]:
    return {f: getattr(e, f) for f in Entry.__dataclass_fields__}
