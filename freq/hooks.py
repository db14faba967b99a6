"""What the shipped git hooks refuse: `pre-push` in a clone, `update` in the shared repository.

Must not import click or subprocess: git is read through store, in this process (a claim's
push is one commit to judge; a git process per commit would cost more than the push). The
shims in hooks/ only exec `git-freq hook ...`; every rule is here (STYLE habit 12).

    pre-push  the pusher's clone; stdin lines `<local ref> <local sha> <remote ref> <remote
              sha>` (an all-zero sha: a deletion, or a ref the remote lacks). Refuses a
              branch whose .frequency/ at the pushed commit is invalid (validate's lines), a
              non-fast-forward update of a ref under refs/frequency/, and the deletion of a
              subject's or a dead-letter queue's ref.
    update    the shared repository, once per ref: `<ref> <old> <new>`. Refuses the same
              rewrites and deletions, and every new commit of a subject's ref (oldest
              first, each against its parent) that is not a legal successor by the rules
              the runtime uses (freq/succession.py, with the configuration of the
              repository's HEAD branch when it has a valid one), and every new commit of a
              dead-letter queue that is not a well-formed entry.

Cap slots and salvage refs point at any commit by design and may be deleted (refs.
is_ephemeral); refs outside refs/frequency/ are not Frequency's to judge (branch protection
is the forge's). Every other ref under refs/frequency/ (locks, control, lanes, the merge
queues, archives) is a chain that only grows: it may be deleted, never rewritten.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from freq import dlq, refs, succession
from freq.config import load_config_files
from freq.errors import ConfigError, CorruptState, UsageError
from freq.layout import FOLDER, is_config_name
from freq.model import Config, name_problem
from freq.runtime import Subject
from freq.store import Store, short

if TYPE_CHECKING:
    from dulwich.objects import Commit

WALK_LIMIT = 100_000  # commits one push may add to a ref, and looked through for an ancestor
SHIMS = ("pre-push", "update")
_PACKAGED = Path(__file__).resolve().parent / "shims"  # in a wheel: package data
_CHECKOUT = Path(__file__).resolve().parent.parent / "hooks"  # in a checkout (editable)
_NOT_FF = (
    "not a fast-forward: history under refs/frequency/ only grows (fetch and let Frequency "
    "replay its events; never force)"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """One ref a hook refuses, and why (one line; the hook prints `freq: <ref>: <why>`)."""

    ref: str
    why: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Push:
    """One line of pre-push's stdin; a sha is None where git gives all zeros."""

    local_ref: str
    local: str | None  # None: the remote ref is deleted
    remote_ref: str
    remote: str | None  # None: the remote has no such ref yet


def shim_text(name: str) -> str:
    """The shim `hooks/NAME` as shipped: package data in a wheel, the checkout's file in an
    editable install."""
    packaged = _PACKAGED / name
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (_CHECKOUT / name).read_text(encoding="utf-8")


def parse_sha(text: str, *, what: str) -> str | None:
    """refs.parse_oid, a mistake being a UsageError that says where it was."""
    try:
        return refs.parse_oid(text)
    except ValueError as exc:
        raise UsageError(f"{what}: {exc}") from None


def parse_pre_push(text: str) -> list[Push]:
    """pre-push's stdin, one Push per line (as pre-commit's `_pre_push_ns` reads it)."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4:
            raise UsageError(
                f"pre-push stdin line {n}: {line!r} is not `<local ref> <local sha> "
                "<remote ref> <remote sha>`"
            )
        local_ref, local, remote_ref, remote = parts
        out.append(
            Push(
                local_ref=local_ref,
                local=parse_sha(local, what=f"pre-push stdin line {n}"),
                remote_ref=remote_ref,
                remote=parse_sha(remote, what=f"pre-push stdin line {n}"),
            )
        )
    return out


def _kept(ref: str) -> bool:
    """A ref whose deletion is refused: a subject's history, a dead-letter queue."""
    return ref.startswith((refs.SUBJECTS, refs.DLQ))


def _deleting(ref: str) -> str:
    what = "a subject's history" if ref.startswith(refs.SUBJECTS) else "a dead-letter queue"
    return f"deleting {what} is refused: it is append-only"


# ---------------------------------------------------------------- pre-push


def check_pushes(store: Store, pushes: Sequence[Push]) -> list[Refusal]:
    """What pre-push refuses of `pushes`, made from the repository of `store`."""
    out: list[Refusal] = []
    for p in pushes:
        ref = p.remote_ref
        if ref.startswith("refs/heads/") and p.local is not None:
            out += [Refusal(ref=ref, why=line) for line in branch_problems(store, p.local, ref)]
        elif not ref.startswith(refs.ROOT) or refs.is_ephemeral(ref):
            continue
        elif p.local is None:
            if _kept(ref):
                out.append(Refusal(ref=ref, why=_deleting(ref)))
        elif p.remote is not None and not store.descends(p.local, p.remote, limit=WALK_LIMIT):
            out.append(Refusal(ref=ref, why=f"{_NOT_FF} (the remote has {short(p.remote)})"))
    return out


def branch_problems(store: Store, oid: str, ref: str) -> list[str]:
    """`git freq validate`'s lines for the .frequency/ of commit `oid` (none when it has no
    such folder, or a valid one)."""
    files = store.folder_at(oid, FOLDER, is_config_name, ref)
    if files is None:
        return []
    try:
        load_config_files(files, root=store.root)
    except ConfigError as exc:
        return [str(p) for p in exc.problems]
    return []


# ---------------------------------------------------------------- update


def shared_config(store: Store) -> Config | None:
    """The configuration of the repository's HEAD branch (`.frequency/` at its tip), or
    None when it has none or an invalid one: the new commits are then judged by structure
    alone. Cached as load_config caches, under the repository's frequency/cache/."""
    head = store.read_ref("HEAD")
    if head is None:
        return None
    try:
        files = store.folder_at(head, FOLDER, is_config_name, "HEAD")
        if files is None:
            return None
        return load_config_files(files, root=store.root, cache_dir=store.state_dir / "cache")
    except (ConfigError, CorruptState):
        return None


def check_update(store: Store, ref: str, old: str | None, new: str | None) -> list[Refusal]:
    """What the update hook refuses of moving `ref` from `old` to `new` (None: absent)."""
    if not ref.startswith(refs.ROOT) or refs.is_ephemeral(ref) or old == new:
        return []
    if new is None:
        return [Refusal(ref=ref, why=_deleting(ref))] if _kept(ref) else []
    if not _kept(ref):
        if old is not None and not store.descends(new, old, limit=WALK_LIMIT):
            return [Refusal(ref=ref, why=_NOT_FF)]
        return []
    try:
        chain = _new_commits(store, ref, old, new)
        why = _judge_subject(store, ref, old, chain) if ref.startswith(refs.SUBJECTS) else None
        if ref.startswith(refs.DLQ):
            why = _judge_dlq(store, ref, chain)
    except _Refused as exc:
        why = exc.why
    except CorruptState as exc:  # an object the push names but did not send
        why = exc.message.removeprefix(f"{ref}: ")
    return [Refusal(ref=ref, why=why)] if why else []


class _Refused(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


def _new_commits(store: Store, ref: str, old: str | None, new: str) -> list[tuple[str, Commit]]:
    """The commits `new` adds above `old` (all of its history when `old` is None), oldest
    first, by first parents; _Refused for a rewrite, a merge, or too many."""
    out: list[tuple[str, Commit]] = []
    oid: str | None = new
    while oid is not None and oid != old:
        if len(out) >= WALK_LIMIT:
            raise _Refused(f"more than {WALK_LIMIT} new commits in one push; push in parts")
        commit = store.commit_at(oid, ref)
        if len(commit.parents) > 1:
            raise _Refused(f"commit {short(oid)}: a merge; its history is one line of commits")
        out.append((oid, commit))
        oid = commit.parents[0].decode() if commit.parents else None
    if oid != old:
        raise _Refused(_NOT_FF)
    out.reverse()
    return out


def _messages(chain: list[tuple[str, Commit]]) -> Iterator[tuple[str, str]]:
    for oid, commit in chain:
        yield oid, commit.message.decode("utf-8", "replace")


def _file(store: Store, oid: str, name: str, ref: str) -> bytes | None:
    try:
        return store.file_at(oid, name, ref)
    except CorruptState as exc:
        if exc.code == "broken-history":
            raise
        return None  # the tree has no such file


def _judge_subject(
    store: Store, ref: str, old: str | None, chain: list[tuple[str, Commit]]
) -> str | None:
    """The first new commit of a subject's ref that is not its parent's legal successor."""
    parent: Subject | None = None
    if old is not None:
        raw = _file(store, old, refs.SUBJECT_FILE, ref)
        found = succession.parse_subject(raw) if raw is not None else "no subject.json"
        if isinstance(found, str):
            return f"its tip {short(old)} cannot be read ({found}): nothing can follow it"
        parent = found
    names = refs.parse_subject_ref(ref)
    config = shared_config(store) if names is not None else None
    factory = config.factory(names[0]) if config is not None and names is not None else None
    for oid, message in _messages(chain):
        rec = succession.read(ref, message, _file(store, oid, refs.SUBJECT_FILE, ref))
        if isinstance(rec, str):
            return f"commit {short(oid)}: {rec}"
        why = succession.check(parent, rec.subject, rec.event, factory=factory)
        if why is not None:
            return f"commit {short(oid)}: {why}"
        parent = rec.subject
    return None


def _judge_dlq(store: Store, ref: str, chain: list[tuple[str, Commit]]) -> str | None:
    """The first new commit of a dead-letter queue that is not a well-formed entry."""
    factory = ref[len(refs.DLQ) :]
    if name_problem(factory):
        return "not a dead-letter queue's ref (refs/frequency/dlq/<factory>)"
    for oid, message in _messages(chain):
        why = dlq.entry_problem(factory, message, _file(store, oid, dlq.ENTRY_FILE, ref))
        if why is not None:
            return f"commit {short(oid)}: {why}"
    return None
