"""Reading the whole state at once: every subject, lock and control document.

Part of freq.store; imports no dulwich (objects are read through the Store, on a cache
miss only). Subjects come from the ref listing and the commit-id cache, so a warm read
costs one listing of the refs and one read of the cache file, however many subjects there
are; refs Frequency cannot read are reported in `Snapshot.problems` and skipped. A cold
read (BULK_MIN misses or more) asks the Store's `bulk` reader for every missing
subject.json at once (one `git cat-file --batch`); what it leaves out is read object by
object, which is also what finds and describes a broken one. A tip read in bulk is not
checked for its other files (the output tail): `Store.verify` does that before anything
builds on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from orjson import loads as _loads

from freq import refs
from freq.errors import CorruptState
from freq.heap import without_gc
from freq.runtime import Snapshot, Subject
from freq.store.archive import ArchiveReader, ArchiveView
from freq.store.cache import DocCache

_HEX = frozenset(b"0123456789abcdef")
T = TypeVar("T")


def parse_cached(raw: bytes | None) -> Any:
    """A cached document parsed (orjson), or None for a miss: absent, or not JSON orjson
    reads (a cache is never trusted over the objects it stands for)."""
    if raw is None:
        return None
    try:
        return _loads(raw)
    except ValueError:
        return None


def problem_line(exc: CorruptState, also: str = "") -> str:
    """A problem as its warning line says it: the message, what was done about it (`also`:
    `ignored`), and the hint when there is one (a broken history names `git freq cleanup
    --repair`)."""
    line = f"{exc.message}; {also}" if also else exc.message
    if exc.hint is None:
        return line
    from freq.render import hint_text  # only when there is a problem to word

    return f"{line}; {hint_text(exc.hint)}"


def subject_of(
    cached: bytes | None, oid: str, ref: str, file_at: Callable[[str, str, str], bytes]
) -> tuple[Subject, bytes | None]:
    """The subject.json of commit `oid`: from its cache entry, else read from git; with the
    bytes to add to the cache on a miss (None when the cache's reader, orjson, could not
    read them back: json accepts NaN and Infinity, orjson does not)."""
    doc = parse_cached(cached)
    if doc is not None:
        return refs.subject_from_doc(doc, where=ref), None
    return subject_from_raw(file_at(oid, refs.SUBJECT_FILE, ref), ref)


def subject_from_raw(raw: bytes, ref: str) -> tuple[Subject, bytes | None]:
    """subject.json as read from git, parsed once: with the bytes to add to the cache (None
    when the cache's reader, orjson, cannot read them: json's NaN and Infinity)."""
    doc = parse_cached(raw)
    if isinstance(doc, dict):
        return refs.subject_from_doc(doc, where=ref), raw
    return refs.subject_from_json(raw, where=ref), None  # says what is wrong with it


Key = tuple[str, str]


@dataclass(slots=True, kw_only=True)
class Listed:
    """The subjects part of the last read, kept to make the next one from: a read costs the
    refs that moved since, not one pass over every subject. Never changed once made (a
    Snapshot shares its dicts); the next read copies what it changes."""

    listed: dict[str, str]  # subject ref -> tip, as listed
    subjects: dict[Key, Subject]
    tips: dict[Key, str]
    keys: dict[str, Key]  # subject ref -> its key, for the refs read into `subjects`
    problems: dict[str, str]  # subject ref -> why it was skipped (read again every time)
    counts: dict[Key, int]  # (factory, state) -> subjects there


@dataclass(slots=True, kw_only=True)
class Reader:
    """What a whole-state read needs of the Store: its ref listing, its object reads, and
    the caches it shares with the Store's writers (`parsed`: commit id → Subject)."""

    list_refs: Callable[[str], dict[str, str]]
    file_at: Callable[[str, str, str], bytes]
    doc_at: Callable[[str, str, str], bytes]
    subjects: DocCache
    documents: DocCache
    archives: ArchiveReader | None = None
    # many subject.json files at once (`<tip>:subject.json` → bytes; freq.proc.cat_files
    # through the Store's `bulk`): a cold read is one git process, not three object reads
    # per subject; None, or what it leaves out, is read object by object
    bulk: Callable[[list[str]], dict[str, bytes]] | None = None
    parsed: dict[bytes, Subject] = field(default_factory=dict)
    last: Listed | None = None  # the last read's subjects (None: read them all next time)

    def read(self) -> Snapshot:
        """Every subject, lock and control document (see `read`)."""
        return read(self)


@without_gc  # a Subject per subject ref, and no cycles (freq.heap)
def read(store: Reader) -> Snapshot:
    """Every subject of every factory, with the tip each was read from.

    Refs under refs/frequency/subjects/ that are not ours, and unreadable subject.json
    files, are skipped and described in `Snapshot.problems` rather than failing the read.
    """
    store.subjects.refresh()
    store.documents.refresh()
    got = _subjects(store, store.list_refs(refs.SUBJECTS))
    problems = sorted(got.problems.values())  # refs were read in listing order: by name
    broken_locks: dict[str, str] = {}
    locks = {
        lock.name: lock
        for lock in _docs_under(
            store, refs.LOCKS, refs.LOCK_FILE, refs.lock_from_json, problems, broken_locks
        )
    }
    broken_controls: dict[str, str] = {}
    controls = {
        c.factory: c
        for c in _docs_under(
            store,
            refs.CONTROL,
            refs.CONTROL_FILE,
            refs.control_from_json,
            problems,
            broken_controls,
        )
    }
    archived = _archives(store, problems)
    return Snapshot(
        archive=archived,
        state_counts=got.counts,
        subjects=got.subjects,
        tips=got.tips,
        problems=tuple(problems),
        locks=locks,
        controls=controls,
        broken_locks={refs.lock_name(r): p for r, p in broken_locks.items()},
        broken_controls={r[len(refs.CONTROL) :]: p for r, p in broken_controls.items()},
    )


def _subjects(store: Reader, listed: dict[str, str]) -> Listed:
    """The subjects of `listed` (ref → tip), made from the last read: only the refs that
    are new, moved or gone since are looked at (and those skipped as problems, which are
    read again every time); the first read looks at all."""
    last = store.last
    if last is None:
        todo, gone = listed, set()
        subjects: dict[Key, Subject] = {}
        tips: dict[Key, str] = {}
        keys: dict[str, Key] = {}
        problems: dict[str, str] = {}
        counts: dict[Key, int] = {}
    else:
        todo = dict(listed.items() - last.listed.items())
        gone = last.listed.keys() - listed.keys()
        for ref in last.problems:
            if ref in listed:
                todo[ref] = listed[ref]
        if not todo and not gone:
            if listed is not last.listed:
                store.last = last = Listed(
                    listed=listed,
                    subjects=last.subjects,
                    tips=last.tips,
                    keys=last.keys,
                    problems=last.problems,
                    counts=last.counts,
                )
            return last
        subjects, tips = dict(last.subjects), dict(last.tips)
        keys, problems, counts = dict(last.keys), dict(last.problems), dict(last.counts)
        for ref in (*gone, *todo):
            problems.pop(ref, None)
            key = keys.pop(ref, None)
            if key is None:
                continue
            tips.pop(key, None)
            old = subjects.pop(key, None)
            if old is not None:
                _count(counts, (key[0], old.state), -1)
    misses: list[tuple[bytes, bytes]] = []
    fetched = _bulk(store, todo)
    for ref, oid in todo.items():
        key = refs.parse_subject_ref(ref)
        if key is None:
            problems[ref] = (
                f"{ref}: not a Frequency subject ref (expected {refs.SUBJECTS}"
                "<factory>/<subject>); ignored"
            )
            continue
        boid = oid.encode()
        if len(boid) != 40 or not _HEX.issuperset(boid):
            problems[ref] = f"{ref}: does not hold a commit id; ignored"
            continue
        subj = store.parsed.get(boid)
        if subj is None:
            try:
                raw = fetched.get(oid)
                if raw is not None:
                    subj, fresh = subject_from_raw(raw, ref)
                else:
                    subj, fresh = subject_of(store.subjects.get(boid), oid, ref, store.file_at)
                if fresh is not None:
                    misses.append((boid, fresh))
            except CorruptState as exc:
                problems[ref] = problem_line(exc)
                continue
            store.parsed[boid] = subj
        if (subj.factory, subj.name) != key:  # a ref pointed at another subject's commit
            problems[ref] = f"{ref}: subject.json names {subj.factory}/{subj.name}; ignored"
            continue
        subjects[key] = subj
        tips[key] = oid
        keys[ref] = key
        _count(counts, (key[0], subj.state), 1)
    if len(store.parsed) > 4 * len(subjects) + 10_000:
        keep = {t.encode(): subjects[k] for k, t in tips.items()}
        store.parsed.clear()  # in place: the Store's writers share this dict
        store.parsed.update(keep)
    if misses:
        store.subjects.add(misses)
    store.subjects.compact(lambda: {t.encode() for t in tips.values()}, len(tips))
    store.last = got = Listed(
        listed=listed, subjects=subjects, tips=tips, keys=keys, problems=problems, counts=counts
    )
    return got


def _count(counts: dict[Key, int], key: Key, by: int) -> None:
    n = counts.get(key, 0) + by
    if n:
        counts[key] = n
    else:
        counts.pop(key, None)


BULK_MIN = 64  # subject.json files not in the caches from which one git process reads them


def _bulk(store: Reader, listed: dict[str, str]) -> dict[str, bytes]:
    """The subject.json of every listed tip that neither cache has, by commit id, read in
    bulk when there are BULK_MIN or more (a cold read)."""
    if store.bulk is None or len(listed) < BULK_MIN:
        return {}
    wanted = [
        oid
        for oid in listed.values()
        if oid.encode() not in store.parsed and store.subjects.get(oid.encode()) is None
    ]
    if len(wanted) < BULK_MIN:
        return {}
    got = store.bulk([f"{oid}:{refs.SUBJECT_FILE}" for oid in wanted])
    cut = len(refs.SUBJECT_FILE) + 1
    return {spec[:-cut]: raw for spec, raw in got.items()}


def _archives(store: Reader, problems: list[str]) -> ArchiveView | None:
    """The archive refs as a view read on demand (None: nothing archived)."""
    if store.archives is None:
        return None
    tips: dict[str, str] = {}
    for ref, oid in store.list_refs(refs.ARCHIVE).items():
        factory = ref[len(refs.ARCHIVE) :]
        if "/" in factory or not factory:
            problems.append(f"{ref}: not a Frequency archive ref; ignored")
            continue
        tips[factory] = oid
    return store.archives.view(tips) if tips else None


def _docs_under(
    store: Reader,
    prefix: str,
    name: str,
    parse: Callable[..., T],
    problems: list[str],
    broken: dict[str, str],
) -> list[T]:
    """File `name` of every ref under `prefix`, parsed; each unreadable one goes to
    `problems` and to `broken` (ref → problem)."""
    out = []
    for ref, oid in sorted(store.list_refs(prefix).items()):
        try:
            out.append(parse(store.doc_at(oid, name, ref), where=ref))
        except CorruptState as exc:
            problems.append(problem_line(exc))
            broken[ref] = exc.message
    return out
