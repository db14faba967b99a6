"""Everything of the store that goes through dulwich: objects, ref writes, history.

The only module of Frequency that imports dulwich (STYLE habit 3), and it uses only
dulwich's public API. freq.store.core imports it on first need, so commands that read only
refs and caches never load dulwich. Functions here do one git thing each; the rules (CAS,
retries, caches, the order of writes) are in core.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dulwich.diff_tree import tree_changes
from dulwich.errors import MissingCommitError
from dulwich.file import FileLocked, GitFile
from dulwich.objects import Blob, Commit, ShaFile, Tree
from dulwich.pack import write_pack
from dulwich.refs import locked_ref
from dulwich.repo import Repo

from freq import refs
from freq.errors import BatchIncomplete, CorruptState, RefConflict
from freq.store.records import HistoryEntry, RefUpdate

__all__ = ["FileLocked", "Repo"]

PACK_THRESHOLD = 64  # objects: more than this are written as one pack


def open_repo(root: Path) -> Repo:
    """The dulwich repository of a working tree, with object fsync on (GIT-NOTES gap 8:
    loose objects must reach the disk before a ref names them)."""
    repo = Repo(str(root))
    repo.object_store.fsync_object_files = True
    return repo


# ---------------------------------------------------------------- building objects


def make_commit(
    identity: bytes, at: datetime, message: str, tree: bytes, parent: str | None
) -> Commit:
    """An event commit: our identity, `at` as both dates (UTC), one parent or none."""
    c = Commit()
    c.tree = tree
    c.parents = [parent.encode()] if parent else []
    c.author = c.committer = identity
    ts = int(at.timestamp())
    c.author_time = c.commit_time = ts
    c.author_timezone = c.commit_timezone = 0
    c.encoding = b"UTF-8"
    c.message = message.encode()
    return c


def subject_tree(
    repo: Repo, subject_json: bytes, output: bytes | None, parent: str | None
) -> tuple[Tree, list[Blob]]:
    """A subject commit's tree: subject.json, and the output tail (new, or the parent's)."""
    blob = Blob.from_string(subject_json)
    tree = Tree()
    tree.add(refs.SUBJECT_FILE.encode(), 0o100644, blob.id)
    new = [blob]
    if output is not None:
        out_blob = Blob.from_string(output)
        tree.add(refs.OUTPUT_FILE.encode(), 0o100644, out_blob.id)
        new.append(out_blob)
    elif parent is not None:
        old_tree = repo.object_store[repo.object_store[parent.encode()].tree]
        with contextlib.suppress(KeyError):
            mode, sha = old_tree[refs.OUTPUT_FILE.encode()]
            tree.add(refs.OUTPUT_FILE.encode(), mode, sha)
    return tree, new


def doc_tree(files: dict[str, bytes]) -> tuple[Tree, list[Blob]]:
    """A tree of `files` (locks, control, DLQ entries)."""
    tree = Tree()
    blobs = []
    for name, data in sorted(files.items()):
        blob = Blob.from_string(data)
        tree.add(name.encode(), 0o100644, blob.id)
        blobs.append(blob)
    return tree, blobs


def oid_of(obj: ShaFile) -> str:
    """An object's id as text."""
    return str(obj.id.decode())


def write_objects(
    repo: Repo,
    objs: Sequence[Blob | Tree | Commit],
    *,
    retry: Callable[[str, Callable[[], Any]], Any],
    tmp_name: str,
) -> None:
    """Write objects loose (each retried while another process writes the same one), or,
    above PACK_THRESHOLD, as one pack."""
    store = repo.object_store
    if len(objs) > PACK_THRESHOLD:
        _write_pack(repo, objs, tmp_name)
        return
    for o in objs:
        # another process writing the identical object holds its lock: same bytes, so
        # waiting for it (or finding the object there) is all that is needed
        retry(o.id.decode(), functools.partial(store.add_object, o))


def _write_pack(repo: Repo, objs: Sequence[Blob | Tree | Commit], tmp_name: str) -> None:
    """dulwich's add_objects re-reads the pack it just wrote to index it (about 3x the cost);
    write_pack builds the index while writing."""
    store = repo.object_store
    pack_dir = os.path.join(store.path, "pack")
    os.makedirs(pack_dir, exist_ok=True)
    tmp = os.path.join(pack_dir, tmp_name)
    data_sum, _idx = write_pack(tmp, [(o, None) for o in objs], store.object_format, deltify=False)
    final = os.path.join(pack_dir, f"pack-{data_sum.hex()}")
    os.replace(tmp + ".pack", final + ".pack")  # the pack before its index: git looks
    os.replace(tmp + ".idx", final + ".idx")  # for packs by their .idx
    # readers find the new pack by themselves: a lookup that misses rescans pack/


# ---------------------------------------------------------------- moving refs


def swap(repo: Repo, ref: str, new: bytes, expected: str | None) -> bool:
    """Move `ref` to `new` if it is at `expected` (None: only if absent)."""
    name = ref.encode()
    if expected is None:
        return bool(repo.refs.add_if_new(name, new))
    return bool(repo.refs.set_if_equals(name, expected.encode(), new))


def remove(repo: Repo, ref: str, expected: str) -> bool:
    """Delete `ref` if it is at `expected`."""
    return bool(repo.refs.remove_if_equals(ref.encode(), expected.encode()))


def apply_batch(repo: Repo, batch: Sequence[RefUpdate]) -> None:
    """Lock every ref of `batch` in name order, check each against its expected value, then
    write them in the order given (RefConflict naming the first that moved; nothing written)."""
    held: dict[str, locked_ref] = {}
    try:
        for u in sorted(batch, key=lambda u: u.ref):
            lock = locked_ref(repo.refs, u.ref.encode())
            lock.__enter__()
            held[u.ref] = lock
        for u in batch:
            want = u.expected.encode() if u.expected is not None else None
            if held[u.ref].get() != want:
                raise RefConflict(u.ref)
        moved: list[str] = []
        for u in batch:
            lock = held.pop(u.ref)
            try:
                if u.new is None:
                    lock.delete()
                else:
                    lock.set(u.new.encode())
                lock.__exit__(None, None, None)  # commits this ref: the rename
            except OSError as exc:
                lock.__exit__(OSError, None, None)
                if not moved:
                    raise  # nothing moved yet: the caller reports it as such
                rest = [v.ref for v in batch[len(moved) :]]
                raise BatchIncomplete(
                    f"{exc.strerror or exc} while moving a ref batch: {', '.join(moved)} "
                    f"moved, {', '.join(rest)} did not (its order leaves that harmless: the "
                    "batch did not take effect)"
                ) from None
            moved.append(u.ref)
    finally:
        for lock in held.values():  # not written: give the lock files back
            lock.__exit__(RefConflict, None, None)


def pack_new_refs(
    repo: Repo, guard_path: Path, new_refs: dict[bytes, bytes], clash: Callable[[list[str]], None]
) -> None:
    """Under the creation lock `guard_path`, add `new_refs` to packed-refs if none exists
    (loose or packed); else call `clash` with their names (which raises)."""
    container = repo.refs
    with GitFile(guard_path, "wb") as guard:
        try:
            packed = container.get_packed_refs()
            taken = [
                r.decode() for r in new_refs if r in packed or os.path.exists(container.refpath(r))
            ]
            if taken:
                clash(taken)
            container.add_packed_refs(new_refs)
        finally:
            guard.abort()  # the creation lock holds no data: never renamed into place


def read_ref(repo: Repo, ref: str) -> str | None:
    """The commit id `ref` (or HEAD) points at, or None."""
    try:
        return str(repo.refs[ref.encode()].decode())
    except KeyError:
        return None


# ---------------------------------------------------------------- reading objects


def commit_at(repo: Repo, oid: str, ref: str) -> Commit:
    """The commit `ref` points at; CorruptState when that object is missing or is not a
    commit (a hand-made or half-fetched ref)."""
    try:
        obj = repo.object_store[oid.encode()]
    except (KeyError, ValueError):
        raise CorruptState(
            f"{ref}: points at {oid[:12]}, which is not in this repository"
        ) from None
    if not isinstance(obj, Commit):
        raise CorruptState(f"{ref}: points at a {obj.type_name.decode()}, not a commit")
    return obj


def file_at(repo: Repo, oid: str, name: str, ref: str) -> bytes:
    """File `name` of commit `oid`'s tree; CorruptState when there is none."""
    commit = commit_at(repo, oid, ref)
    store = repo.object_store
    try:
        _mode, sha = store[commit.tree][name.encode()]
        return bytes(store[sha].data)
    except KeyError:
        raise CorruptState(f"{ref}: commit {oid[:12]} has no {name}") from None


def read_output(repo: Repo, oid: str) -> bytes | None:
    """The output tail kept in commit `oid`'s tree, if any."""
    store = repo.object_store
    try:
        tree = store[store[oid.encode()].tree]
        _mode, sha = tree[refs.OUTPUT_FILE.encode()]
        return bytes(store[sha].data)
    except KeyError:
        return None


def first_parent(repo: Repo, oid: str) -> str | None:
    """The first parent of commit `oid`."""
    commit = repo.object_store[oid.encode()]
    return commit.parents[0].decode() if commit.parents else None


def changed_paths(repo: Repo, old: str | None, new: str) -> list[str]:
    """Paths that differ between the trees of commits `old` and `new` (every path of `new`
    when `old` is None)."""
    store = repo.object_store
    new_tree = store[new.encode()].tree
    old_tree = store[old.encode()].tree if old else None
    out = []
    for change in tree_changes(store, old_tree, new_tree):
        for side in (change.old, change.new):
            if side is not None and side.path is not None:
                out.append(side.path.decode("utf-8", "replace"))
    return sorted(set(out))


def history(repo: Repo, tips: dict[str, str], limit: int | None) -> Iterator[HistoryEntry]:
    """Commits reachable from `tips` (ref → oid), newest first; each commit once."""
    owner = {oid.encode(): ref for ref, oid in tips.items()}
    try:
        for entry in repo.get_walker(include=list(owner), max_entries=limit):
            c = entry.commit
            ref = owner.get(c.id, "")
            for p in c.parents:
                owner.setdefault(p, ref)
            message = c.message.decode("utf-8", "replace")
            yield HistoryEntry(
                oid=c.id.decode(),
                ref=ref,
                at=datetime.fromtimestamp(c.commit_time, UTC),
                message=message,
                renewal=refs.parse_trailers(message).get("Freq-Event") == "renewed",
            )
    except MissingCommitError as exc:
        raise CorruptState(
            f"the history of {', '.join(sorted(tips))} names a commit that is not in this "
            f"repository ({exc!s})"
        ) from None
