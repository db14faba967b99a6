"""Everything of the store that goes through dulwich: building objects, reading them, history.

The only module of Frequency that imports dulwich (STYLE habit 3), and it uses only
dulwich's public API. freq.store.core imports it on first need, so commands that read only
refs and caches never load dulwich. Refs are written by freq.store.refdb (git's formats,
with lock files that tell whether their writer is alive); loose objects are encoded here
and written there. Functions here do one git thing each; the rules (CAS, retries, caches,
the order of writes) are in core.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

from dulwich.diff_tree import tree_changes
from dulwich.errors import MissingCommitError
from dulwich.objects import Blob, Commit, ShaFile, Tree
from dulwich.pack import write_pack
from dulwich.repo import Repo

from freq import refs
from freq.errors import CorruptState
from freq.store import refdb
from freq.store.records import HistoryEntry

__all__ = ["Repo"]

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
        try:
            old_tree = repo.object_store[repo.object_store[parent.encode()].tree]
        except KeyError:
            raise CorruptState(
                f"history broken at {parent[:12]}: that commit is not in this repository"
            ) from None
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


def write_objects(repo: Repo, objs: Sequence[Blob | Tree | Commit], *, tmp_name: str) -> None:
    """Write objects loose, each under a unique temporary name linked into place (never
    blocked by a lock file), or, above PACK_THRESHOLD, as one pack."""
    if len(objs) > PACK_THRESHOLD:
        _write_pack(repo, objs, tmp_name)
        return
    objects_dir = os.fspath(repo.object_store.path)
    for o in objs:
        refdb.write_loose_object(objects_dir, o.id.decode(), o.as_legacy_object())


def _write_pack(repo: Repo, objs: Sequence[Blob | Tree | Commit], tmp_name: str) -> None:
    """dulwich's add_objects re-reads the pack it just wrote to index it (about 3x the cost);
    write_pack builds the index while writing."""
    store = repo.object_store
    pack_dir = os.path.join(store.path, "pack")
    os.makedirs(pack_dir, exist_ok=True)
    tmp = os.path.join(pack_dir, tmp_name)
    try:
        data_sum, _idx = write_pack(
            tmp, [(o, None) for o in objs], store.object_format, deltify=False
        )
        final = os.path.join(pack_dir, f"pack-{data_sum.hex()}")
        os.replace(tmp + ".pack", final + ".pack")  # the pack before its index: git looks
        os.replace(tmp + ".idx", final + ".idx")  # for packs by their .idx
    finally:
        for leftover in (tmp + ".pack", tmp + ".idx"):  # a full disk: leave nothing behind
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
    # readers find the new pack by themselves: a lookup that misses rescans pack/


# ---------------------------------------------------------------- reading refs


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
