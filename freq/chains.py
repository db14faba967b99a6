"""Broken history: find the refs whose commit chain names a missing object, and mend them.

Must not import click or subprocess; reads and writes only through store, each repair one
compare-and-swap from the broken tip. A chain is broken when a commit of it, its tree, a
file of its tree or a merge's second parent is not in the object store: `git gc
--prune=now` removed what no ref reached yet, and a ref then moved onto it or a commit was
built on it (git documents --prune=now as unsafe beside concurrent writers, for itself too).
Mending (`git freq cleanup --repair`) returns the ref to its last intact state as a new
commit:

    parent    the newest commit below which the whole chain is intact (none: a new root)
    content   the newest state that can still be read: the tip's, else the tip's copy in the
              snapshot cache (keyed by commit id), else the newest readable commit's above
              the break, else the parent's
    message   names the missing objects and every commit that leaves the history

A subject's new state is transitions.repaired (any claim ended, the epoch raised); a lock
or control ref keeps its newest readable document (when none is readable, the lock is
released, as `locks break` would, and the factory is paused, the cautious guess); a
dead-letter queue gets a `repair` record naming the entries it lost; a cap slot on a broken
chain is deleted (a slot is free once the claim it points at is gone). A subject with no
readable state anywhere, and refs of a kind Frequency does not write, are reported with
what to do.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from freq import refs, transitions
from freq.dlq import ENTRY_FILE, Dlq, Entry
from freq.errors import BrokenHistory, CorruptState, RefConflict
from freq.runtime import Control, Lock, Snapshot, Subject
from freq.store import ChainLink, Store, short

T = TypeVar("T")
_LISTED = 30  # dropped commits named one per line in a repair's message


# ---------------------------------------------------------------- finding breaks (pure)


@dataclass(frozen=True, slots=True, kw_only=True)
class Break:
    """A ref whose chain is broken: its links from the tip down as far as they can be read
    (the walk ends at a root, or at a missing commit), and where an intact base starts."""

    ref: str
    kind: str  # subject | dlq | lock | control | cap | other
    tip: str
    links: tuple[ChainLink, ...]
    base_index: int | None  # links[base_index:] are intact down to a root; None: no such link

    @property
    def base(self) -> str | None:
        """The commit a repair builds on (None: the repair is a new root)."""
        return self.links[self.base_index].oid if self.base_index is not None else None

    @property
    def lost(self) -> tuple[ChainLink, ...]:
        """The commits a repair drops from the history, newest first (missing ones too)."""
        return self.links[: self.base_index] if self.base_index is not None else self.links

    @property
    def readable(self) -> tuple[ChainLink, ...]:
        """The links a repair may read its state from: the lost ones and the base."""
        return self.links[: self.base_index + 1] if self.base_index is not None else self.links

    @property
    def missing(self) -> tuple[str, ...]:
        """Ids of the objects found missing, newest first."""
        ids = (link.missing_oid for link in self.links if link.missing_oid is not None)
        return tuple(dict.fromkeys(ids))

    @property
    def unknown_below(self) -> bool:
        """The walk stopped at a missing commit: whatever lies below it cannot be found."""
        return self.links[-1].missing == "commit"

    @property
    def problem(self) -> BrokenHistory:
        """Where the chain first breaks, as the error every reader reports."""
        link = next(link for link in self.links if not link.intact)
        if link.missing == "commit":
            return BrokenHistory(self.ref, link.oid)
        what = "second parent" if link.missing == "parent" else link.missing or ""
        return BrokenHistory(self.ref, link.oid, missing=link.missing_oid, what=what)


def kind_of(ref: str) -> str:
    """What a ref under refs/frequency/ holds, as far as mending it goes."""
    if refs.parse_subject_ref(ref) is not None:
        return "subject"
    for prefix, kind in ((refs.DLQ, "dlq"), (refs.LOCKS, "lock"), (refs.CONTROL, "control")):
        if ref.startswith(prefix):
            return kind
    return "cap" if ref.startswith(refs.CAPS) else "other"


def intact_base(links: Sequence[ChainLink]) -> int | None:
    """Index of the newest link such that it and every link below it are intact, down to a
    root (0: the chain is whole); None when there is none (the walk ended at a missing
    commit, or the root itself is broken)."""
    if not links or not links[-1].intact:
        return None
    j = len(links)
    while j > 0 and links[j - 1].intact:
        j -= 1
    return j


def analyse(ref: str, tip: str, links: Sequence[ChainLink]) -> Break | None:
    """The Break of a chain, or None when it is whole."""
    base = intact_base(links)
    if base == 0:
        return None
    return Break(ref=ref, kind=kind_of(ref), tip=tip, links=tuple(links), base_index=base)


def find(store: Store, seen: dict[str, ChainLink]) -> tuple[list[Break], list[str], int]:
    """Walk every chain under refs/frequency/: (its breaks, a line for each ref that is no
    chain at all, how many refs were walked). `seen` (commit id → link) is shared so that a
    commit several refs reach (a cap slot's claim commit) is read once."""
    breaks: list[Break] = []
    junk: list[str] = []
    tips = sorted(store.list_refs(refs.ROOT).items())
    for ref, tip in tips:
        try:
            links = store.chain(ref, tip, seen)
        except CorruptState as exc:  # a blob or a tree where a commit belongs
            junk.append(exc.message)
            continue
        found = analyse(ref, tip, links)
        if found is not None:
            breaks.append(found)
    return breaks, junk, len(tips)


# ---------------------------------------------------------------- mending


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """What mending one break did, or (a dry run) would do."""

    mended: bool  # mended, or (dry run) it would be
    description: str  # `back to done as of 6a57723cd57b on top of 19c13914cda8; ...`
    commit: str | None = None  # the ref's new tip (None: a dry run, a deletion, or not mended)
    advice: str = ""  # not mended: what to do instead
    notes: tuple[str, ...] = ()  # what a person may want to do after the repair


@dataclass(frozen=True, slots=True, kw_only=True)
class _Found:
    """The newest readable document of a broken chain, and where it was read."""

    index: int  # into Break.links
    cached: bool  # from the cache: the commit (or its file) is missing from git


class Mender:
    """Mends breaks for one person (`by`) at one instant (`at`)."""

    def __init__(self, store: Store, *, at: datetime, by: str, dry_run: bool) -> None:
        self.store = store
        self.at = at
        self.by = by
        self.dry_run = dry_run

    def mend(self, brk: Break, snap: Snapshot) -> Outcome:
        """Mend one break (a dry run says how); RefConflict when its ref moved meanwhile."""
        if brk.kind == "subject":
            return self._subject(brk)
        if brk.kind == "lock":
            return self._lock(brk)
        if brk.kind == "control":
            return self._control(brk)
        if brk.kind == "dlq":
            return self._dlq(brk, snap)
        if brk.kind == "cap":
            if not self.dry_run and not self.store.delete(brk.ref, expected=brk.tip):
                raise RefConflict(brk.ref)
            return Outcome(
                mended=True,
                description="deleted (a cap slot is free once the claim it points at is gone)",
            )
        return Outcome(
            mended=False,
            description="",
            advice=(
                "Frequency does not mend this kind of ref; if nothing in it is needed, "
                f"delete it: `git update-ref -d {brk.ref}`"
            ),
        )

    # ------------------------------------------------------------ reading what is left

    def _newest(
        self, brk: Break, name: str, parse: Callable[[bytes], T]
    ) -> tuple[T, _Found] | None:
        """The newest document `name` of the chain that can be read and parsed (from git,
        else from the cache), down to the intact base."""
        for i, link in enumerate(brk.readable):
            for cached in (False, True):
                raw = self._read(link, name, brk.ref, cached)
                if raw is None:
                    continue
                try:
                    return parse(raw), _Found(index=i, cached=cached)
                except CorruptState:
                    continue
        return None

    def _read(self, link: ChainLink, name: str, ref: str, cached: bool) -> bytes | None:
        if cached:
            if name == refs.SUBJECT_FILE:
                return self.store.cached(link.oid)
            return self.store.cached_doc(link.oid, name)
        if link.missing == "commit":
            return None
        try:
            return self.store.file_at(link.oid, name, ref)
        except CorruptState:
            return None

    def _output(self, brk: Break, found: _Found) -> bytes | None:
        """The newest output tail at or below the kept state, down to the base."""
        for link in brk.readable[found.index :]:
            if link.missing != "commit":
                out = self.store.read_output(link.oid)
                if out is not None:
                    return out
        return None

    # ------------------------------------------------------------ words

    @staticmethod
    def _source(brk: Break, found: _Found | None) -> str | None:
        if found is None:
            return None
        oid = brk.links[found.index].oid
        return f"{oid} (cached copy)" if found.cached else oid

    @staticmethod
    def _reason(brk: Break, found: _Found | None, what: str) -> str:
        """One sentence: where it broke, what was kept (`what`, read where `found` says;
        `what` alone when nothing was read), and what the repair stands on."""
        kept = f"{what}, " if what else ""
        if found is not None:
            oid = short(brk.links[found.index].oid)
            kept = f"kept {what} of {oid}" + (" (its cached copy)" if found.cached else "") + ", "
        on = (
            f"on top of {short(brk.base)}, the newest commit below which the chain is intact"
            if brk.base is not None
            else "as a new root (no commit of the chain is intact down to its root)"
        )
        where = brk.problem.message.split(": ", 1)[1]
        return f"{where}; {kept}{on}"

    @staticmethod
    def _details(brk: Break) -> str:
        lost = brk.lost
        lines = [f"No longer in this history ({_commits(len(lost))}, newest first):"]
        lines += [f"  {short(link.oid)} {link.headline}" for link in lost[:_LISTED]]
        if len(lost) > _LISTED:
            lines.append(f"  ... and {len(lost) - _LISTED} more")
        if brk.unknown_below:
            lines.append(f"  (and whatever lay below {short(brk.links[-1].oid)}: not found)")
        return "\n".join(lines)

    @staticmethod
    def _summary(brk: Break, found: _Found | None, what: str) -> str:
        src = ""
        if found is not None:
            src = f" as of {short(brk.links[found.index].oid)}" + (
                " (cached copy)" if found.cached else ""
            )
        on = f"on top of {short(brk.base)}" if brk.base is not None else "as a new root"
        n = len(brk.lost)
        unknown = " (and those below the missing one)" if brk.unknown_below else ""
        return f"{what}{src} {on}, dropping {_commits(n)}{unknown} from its history"

    # ------------------------------------------------------------ one kind each

    def _subject(self, brk: Break) -> Outcome:
        key = refs.parse_subject_ref(brk.ref)
        assert key is not None

        def parse(raw: bytes) -> Subject:
            subj = refs.subject_from_json(raw, where=brk.ref)
            if (subj.factory, subj.name) != key:
                raise CorruptState(f"{brk.ref}: subject.json names {subj.factory}/{subj.name}")
            return subj

        got = self._newest(brk, refs.SUBJECT_FILE, parse)
        if got is None:
            return Outcome(
                mended=False,
                description="",
                advice=(
                    "no state of it can be read (no commit left of its chain holds a readable "
                    "subject.json, and the snapshot cache has no copy); delete the ref "
                    f"(`git update-ref -d {brk.ref}`) and add the subject again (`git freq add "
                    f"{key[0]} {key[1]} --state STATE`)"
                ),
            )
        subj, found = got
        newer = brk.links[: found.index]
        known = [
            int(e)
            for link in newer
            if (e := refs.parse_trailers(link.message).get("Freq-Epoch", "")).isdigit()
        ]
        unknown = sum(1 for link in newer if link.missing == "commit")
        change = transitions.repaired(
            subj,
            at=self.at,
            by=self.by,
            missing=brk.missing,
            lost=len(brk.lost),
            seen_epoch=max([subj.epoch, *known]) + unknown,
            restored_from=self._source(brk, found) or "",
            reason=self._reason(brk, found, "the state"),
            details=self._details(brk),
        )
        commit = None
        if not self.dry_run:
            commit = self.store.prepare(
                change.subject, change.event, parent=brk.base, output=self._output(brk, found)
            )
            self.store.swap(brk.ref, commit, expected=brk.tip)
        desc = self._summary(brk, found, f"back to {subj.state}")
        if subj.claim is not None:
            c = subj.claim
            desc += f"; the claim of {c.holder} on {c.step} attempt {c.attempt} ended"
        return Outcome(mended=True, description=desc, commit=commit)

    def _write_doc(
        self,
        brk: Break,
        files: dict[str, bytes],
        head: str,
        event: str,
        ids: tuple[tuple[str, str], ...],
        found: _Found | None,
        what: str,
    ) -> str | None:
        if self.dry_run:
            return None
        message = refs.repair_message(
            head,
            event=event,
            ids=ids,
            by=self.by,
            missing=brk.missing,
            lost=len(brk.lost),
            restored_from=self._source(brk, found),
            reason=self._reason(brk, found, what),
            details=self._details(brk),
        )
        commit = self.store.prepare_doc(files, message, at=self.at, parent=brk.base)
        self.store.swap(brk.ref, commit, expected=brk.tip)
        return commit

    def _lock(self, brk: Break) -> Outcome:
        name = refs.lock_name(brk.ref)
        got = self._newest(brk, refs.LOCK_FILE, lambda raw: refs.lock_from_json(raw, where=brk.ref))
        if got is None:
            lock = Lock(
                name=name,
                holder=self.by,
                subject="",
                epoch=0,
                acquired_at=self.at,
                ttl=timedelta(0),
                expires_at=self.at,
                released=True,
            )
            what, found = "released (no state of it could be read), as `locks break` would", None
        else:
            lock, found = got
            what = "its lock.json"
        files = {refs.LOCK_FILE: refs.lock_to_json(lock)}
        commit = self._write_doc(
            brk, files, f"lock {name}", "lock-repair", (("Freq-Lock", name),), found, what
        )
        return Outcome(mended=True, description=self._summary(brk, found, what), commit=commit)

    def _control(self, brk: Break) -> Outcome:
        factory = brk.ref[len(refs.CONTROL) :]
        got = self._newest(
            brk, refs.CONTROL_FILE, lambda raw: refs.control_from_json(raw, where=brk.ref)
        )
        notes: tuple[str, ...] = ()
        if got is None:
            control = Control(
                factory=factory,
                paused=True,
                by=self.by,
                why="its control state was lost with its history",
                at=self.at,
            )
            what, found = "paused (no state of it could be read)", None
            notes = (f"{factory} is paused until you run `git freq resume {factory}`",)
        else:
            control, found = got
            what = "its control.json"
        files = {refs.CONTROL_FILE: refs.control_to_json(control)}
        commit = self._write_doc(
            brk, files, factory, "control-repair", (("Freq-Factory", factory),), found, what
        )
        return Outcome(
            mended=True, description=self._summary(brk, found, what), commit=commit, notes=notes
        )

    def _dlq(self, brk: Break, snap: Snapshot) -> Outcome:
        factory = brk.ref[len(refs.DLQ) :]
        seqs = [0]
        base_seq = 0
        for i, link in enumerate(brk.links):
            seq = _seq(refs.parse_trailers(link.message).get("Freq-Dlq", ""))
            for cached in (False, True):
                raw = self._read(link, ENTRY_FILE, brk.ref, cached) if seq is None else None
                if raw is not None:
                    seq = _entry_seq(raw)
            if seq is not None:
                seqs.append(seq)
                if i == brk.base_index:
                    base_seq = seq
        waiting = {
            subj.parked: subj for subj in snap.in_factory(factory) if subj.parked is not None
        }
        seqs += [n for n in map(_seq, waiting) if n is not None]
        seq = max(seqs) + 1
        entry = Entry(
            id=f"{factory}#{seq}",
            seq=seq,
            kind="repair",
            factory=factory,
            subject="",
            at=self.at,
            reason=self._reason(brk, None, ""),
            by=self.by,
        )
        commit = None
        if not self.dry_run:
            message = refs.repair_message(
                f"dlq {entry.id}",
                event="dlq-repair",
                ids=(("Freq-Dlq", entry.id), ("Freq-Factory", factory)),
                by=self.by,
                missing=brk.missing,
                lost=len(brk.lost),
                restored_from=None,
                reason=entry.reason,
                details=self._details(brk),
            )
            queue = Dlq(self.store, self.store.clock)
            commit = queue.mend(entry, message, tip=brk.tip, base=brk.base).commit
        stranded = sorted((p, s) for p, s in waiting.items() if (_seq(p) or 0) > base_seq)
        notes = tuple(
            f"{factory}/{s.name} waits as {p}, which left the queue with the broken history; "
            f"move it on with `git freq transition {factory} {s.name} STATE --reason ...`"
            for p, s in stranded
        )
        desc = self._summary(brk, None, f"a repair record {entry.id}")
        return Outcome(mended=True, description=desc, commit=commit, notes=notes)


def _commits(n: int) -> str:
    return f"{n} commit{'s' if n != 1 else ''}"


def _seq(entry_id: str) -> int | None:
    """N of a dead-letter id `factory#N`."""
    num = entry_id.rpartition("#")[2]
    return int(num) if num.isdigit() else None


def _entry_seq(raw: bytes) -> int | None:
    """The sequence number an entry.json holds, if it can be read."""
    try:
        seq = json.loads(raw).get("seq")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    return seq if isinstance(seq, int) else None
