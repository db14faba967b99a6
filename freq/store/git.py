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
import functools
import heapq
import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from dulwich.diff_tree import tree_changes
from dulwich.objects import Blob, Commit, ShaFile, Tree
from dulwich.pack import write_pack
from dulwich.repo import Repo

from freq import refs
from freq.errors import BrokenHistory, CorruptState
from freq.store import refdb
from freq.store.records import ChainLink, HistoryEntry

__all__ = ["Repo"]

PACK_THRESHOLD = 64  # objects: more than this are written as one pack


# dulwich's pack cache is not safe for threads (the loop, the heartbeat and step threads
# read through one Repo): every read below holds this lock. And a lookup can miss an object
# that is there: `git gc` moves loose objects into a new pack between dulwich's look into
# its packs and its look for the loose file; a miss is tried again, packs rescanned.
_READS = threading.RLock()
# the same lock, for freq.store.wire: a push walks the object store, a fetch adds a pack
OBJECTS = _READS
F = TypeVar("F", bound=Callable[..., Any])


def _serial(fn: F) -> F:
    @functools.wraps(fn)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _READS:
            return fn(*args, **kwargs)

    return locked  # type: ignore[return-value]


def _get(store: Any, sha: bytes) -> Any:
    try:
        return store[sha]
    except KeyError:
        return store[sha]  # once more: see _READS


def _has(store: Any, sha: bytes) -> bool:
    return sha in store or sha in store


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
    subject_json: bytes, output: bytes | None, inherited: tuple[int, bytes] | None
) -> tuple[Tree, list[Blob]]:
    """A subject commit's tree: subject.json, and the output tail: new, or `inherited`
    (the parent's entry, from output_entry)."""
    blob = Blob.from_string(subject_json)
    tree = Tree()
    tree.add(refs.SUBJECT_FILE.encode(), 0o100644, blob.id)
    new = [blob]
    if output is not None:
        out_blob = Blob.from_string(output)
        tree.add(refs.OUTPUT_FILE.encode(), 0o100644, out_blob.id)
        new.append(out_blob)
    elif inherited is not None:
        tree.add(refs.OUTPUT_FILE.encode(), *inherited)
    return tree, new


def output_of(tree: Tree) -> tuple[int, bytes] | None:
    """The output tail's (mode, blob id) in a subject tree, or None."""
    try:
        mode, sha = tree[refs.OUTPUT_FILE.encode()]
    except KeyError:
        return None
    return mode, sha


@_serial
def output_entry(repo: Repo, parent: str) -> tuple[int, bytes] | None:
    """The output tail's (mode, blob id) in commit `parent`'s tree, or None."""
    try:
        old_tree = _get(repo.object_store, _get(repo.object_store, parent.encode()).tree)
    except KeyError:
        raise CorruptState(
            f"history broken at {parent[:12]}: that commit is not in this repository"
        ) from None
    return output_of(old_tree)


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
    repo: Repo, objs: Sequence[Blob | Tree | Commit], *, tmp_name: str, also: Sequence[int] = ()
) -> None:
    """Write objects durably: loose, each under a unique temporary name linked into place
    (never blocked by a lock file), or, above PACK_THRESHOLD, as one pack; the files of
    `also` are made durable with them (freq.store.refdb.write_loose_objects). An object
    named twice (two commits of one batch with the same output tail) is written once: a
    pack listing it twice has more entries than its index, and dulwich refuses to read such
    a pack."""
    objs = list({o.id: o for o in objs}.values())
    if len(objs) > PACK_THRESHOLD:
        _write_pack(repo, objs, tmp_name)  # fsynced by dulwich's GitFile
        refdb.sync_all(also)
        return
    refdb.write_loose_objects(
        os.fspath(repo.object_store.path),
        [(o.id.decode(), o.as_legacy_object()) for o in objs],
        also,
    )


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


@_serial
def read_ref(repo: Repo, ref: str) -> str | None:
    """The commit id `ref` (or HEAD) points at, or None."""
    try:
        return str(repo.refs[ref.encode()].decode())
    except KeyError:
        return None


# ---------------------------------------------------------------- reading objects
#
# An object a Frequency ref reaches can be missing: `git gc --prune=now` removes what no ref
# reaches yet, and a ref may then move onto it, or a commit be built on it. Every read below
# names such a hole as BrokenHistory (one line, with `cleanup --repair` as its hint), never
# as dulwich's KeyError or MissingCommitError.


@_serial
def is_commit(repo: Repo, oid: str) -> bool:
    """Whether the object store holds commit `oid`."""
    try:
        return bool(_get(repo.object_store, oid.encode()).type_name == b"commit")
    except (KeyError, ValueError):
        return False


@_serial
def commit_at(repo: Repo, oid: str, ref: str) -> Commit:
    """The commit `ref` points at; BrokenHistory when that object is missing, CorruptState
    when it is not a commit (a hand-made or half-fetched ref)."""
    try:
        obj = _get(repo.object_store, oid.encode())
    except KeyError:
        raise BrokenHistory(ref, oid) from None
    except ValueError:
        raise CorruptState(f"{ref}: points at {oid[:12]}, which is not a commit id") from None
    if not isinstance(obj, Commit):
        raise CorruptState(f"{ref}: points at a {obj.type_name.decode()}, not a commit")
    return obj


@_serial
def _tree_of(repo: Repo, commit: Commit, ref: str) -> Tree:
    try:
        tree = _get(repo.object_store, commit.tree)
    except KeyError:
        raise BrokenHistory(
            ref, commit.id.decode(), missing=commit.tree.decode(), what="tree"
        ) from None
    if not isinstance(tree, Tree):
        raise CorruptState(f"{ref}: commit {commit.id.decode()[:12]} names a tree that is not one")
    return tree


@_serial
def _first_missing(repo: Repo, tree: Tree) -> tuple[str, str] | None:
    """(file name, object id) of the first file of a tree that is not in the object store."""
    store = repo.object_store
    for entry in tree.iteritems():
        if entry.mode != 0o160000 and not _has(store, entry.sha):  # 160000: a submodule's commit
            return entry.path.decode("utf-8", "replace"), entry.sha.decode()
    return None


@_serial
def whole(repo: Repo, oid: str, ref: str) -> Tree:
    """The tree of the commit `ref` points at, checked to be there with every file of it
    (what a write on top of it reuses); BrokenHistory naming the first object missing."""
    tree = _tree_of(repo, commit_at(repo, oid, ref), ref)
    gap = _first_missing(repo, tree)
    if gap is not None:
        raise BrokenHistory(ref, oid, missing=gap[1], what=gap[0])
    return tree


@_serial
def file_at(repo: Repo, oid: str, name: str, ref: str, *, whole_tree: bool = False) -> bytes:
    """File `name` of commit `oid`'s tree; CorruptState when there is none, BrokenHistory
    when an object on the way is missing (with `whole_tree`, any file of the tree)."""
    commit = commit_at(repo, oid, ref)
    tree = _tree_of(repo, commit, ref)
    if whole_tree:
        gap = _first_missing(repo, tree)
        if gap is not None:
            raise BrokenHistory(ref, oid, missing=gap[1], what=gap[0])
    try:
        _mode, sha = tree[name.encode()]
    except KeyError:
        raise CorruptState(f"{ref}: commit {oid[:12]} has no {name}") from None
    try:
        return bytes(_get(repo.object_store, sha).data)
    except KeyError:
        raise BrokenHistory(ref, oid, missing=sha.decode(), what=name) from None


@_serial
def folder_at(
    repo: Repo, oid: str, folder: str, ref: str, keep: Callable[[str], bool]
) -> dict[str, bytes] | None:
    """The regular files directly in `folder` (one name, at the root of commit `oid`'s
    tree) whose names `keep` accepts, name → content; None when there is no such folder."""
    store = repo.object_store
    tree = _tree_of(repo, commit_at(repo, oid, ref), ref)
    try:
        mode, sha = tree[folder.encode()]
    except KeyError:
        return None
    if not stat.S_ISDIR(mode):
        return None
    try:
        sub = _get(store, sha)
    except KeyError:
        raise BrokenHistory(ref, oid, missing=sha.decode(), what=folder) from None
    out: dict[str, bytes] = {}
    for entry in sub.iteritems():
        name = entry.path.decode("utf-8", "replace")
        if stat.S_ISREG(entry.mode) and keep(name):
            try:
                out[name] = bytes(_get(store, entry.sha).data)
            except KeyError:
                raise BrokenHistory(ref, oid, missing=entry.sha.decode(), what=name) from None
    return out


@_serial
def read_output(repo: Repo, oid: str) -> bytes | None:
    """The output tail kept in commit `oid`'s tree, if any (None also when it is missing)."""
    store = repo.object_store
    try:
        tree = _get(store, _get(store, oid.encode()).tree)
        _mode, sha = tree[refs.OUTPUT_FILE.encode()]
        return bytes(_get(store, sha).data)
    except KeyError:
        return None


@_serial
def descends(repo: Repo, tip: str, ancestor: str, limit: int) -> bool:
    """Whether `ancestor` is reachable from commit `tip` within `limit` commits (False
    beyond, or when one is missing: the caller then asks git)."""
    want = ancestor.encode()
    seen: set[bytes] = set()
    todo = [tip.encode()]
    while todo and len(seen) < limit:
        oid = todo.pop()
        if oid == want:
            return True
        if oid in seen:
            continue
        seen.add(oid)
        try:
            commit = repo.object_store[oid]
        except KeyError:
            return False
        todo.extend(getattr(commit, "parents", ()))
    return False


@_serial
def first_parent(repo: Repo, oid: str, ref: str) -> str | None:
    """The first parent of commit `oid` (of `ref`'s chain); BrokenHistory when it is missing."""
    commit = commit_at(repo, oid, ref or refs.ROOT)
    return commit.parents[0].decode() if commit.parents else None


@_serial
def restacked(repo: Repo, oid: str, parent: str) -> Commit:
    """A copy of commit `oid` (its tree, message, author and dates) on `parent`: one local
    event replayed onto the remote's tip (freq.sync)."""
    old = commit_at(repo, oid, refs.ROOT)
    c = Commit()
    c.tree = old.tree
    c.parents = [parent.encode()]
    c.author, c.committer = old.author, old.committer
    c.author_time, c.commit_time = old.author_time, old.commit_time
    c.author_timezone, c.commit_timezone = old.author_timezone, old.commit_timezone
    c.encoding = old.encoding
    c.message = old.message
    return c


@_serial
def messages(
    repo: Repo, ref: str, tip: str, stop: str | None, broken: list[BrokenHistory]
) -> tuple[list[tuple[str, str]], bool]:
    """(oid, message) of each commit of `ref`'s first-parent chain from `tip` down, newest
    first, ending before `stop` (then True) or at a root (False). A missing commit ends the
    walk too: it is noted in `broken`."""
    store = repo.object_store
    out: list[tuple[str, str]] = []
    oid: bytes | None = tip.encode()
    want = stop.encode() if stop is not None else None
    while oid is not None:
        if oid == want:
            return out, True
        try:
            c = _get(store, oid)
        except KeyError:
            broken.append(BrokenHistory(ref, oid.decode()))
            break
        if not isinstance(c, Commit):
            raise CorruptState(
                f"{ref}: {oid.decode()[:12]} is a {c.type_name.decode()}, not a commit"
            )
        out.append((oid.decode(), c.message.decode("utf-8", "replace")))
        oid = c.parents[0] if c.parents else None
    return out, False


@_serial
def changed_paths(repo: Repo, old: str | None, new: str) -> list[str]:
    """Paths that differ between the trees of commits `old` and `new` (every path of `new`
    when `old` is None, or no longer in the repository: its branch was rewritten and the
    commit pruned, so nothing is known to be unchanged)."""
    store = repo.object_store
    try:
        new_tree = _get(store, new.encode()).tree
    except KeyError:
        raise CorruptState(f"commit {new[:12]}, a branch tip, is not in this repository") from None
    old_tree = None
    if old:
        with contextlib.suppress(KeyError):
            old_tree = _get(store, old.encode()).tree
    out = []
    try:
        for change in tree_changes(store, old_tree, new_tree):
            for side in (change.old, change.new):
                if side is not None and side.path is not None:
                    out.append(side.path.decode("utf-8", "replace"))
    except KeyError as exc:
        raise CorruptState(
            f"a tree or file of commit {new[:12]} is not in this repository ({exc!s})"
        ) from None
    return sorted(set(out))


def history(
    repo: Repo, tips: dict[str, str], limit: int | None, broken: list[BrokenHistory] | None
) -> Iterator[HistoryEntry]:
    """Commits reachable from `tips` (ref → oid), newest first; each commit once.

    The order is dulwich's walker's (and `git log --date-order`'s): by commit time, ties by
    commit id. A parent that is missing ends that line of history: BrokenHistory after the
    commits before it were given, or, with `broken` (a list), noted there while the walk goes
    on with every other line."""
    store = repo.object_store
    heap: list[tuple[int, bytes, Commit, str]] = []
    queued: set[bytes] = set()

    def push(oid: bytes, ref: str) -> None:
        if oid in queued:
            return
        queued.add(oid)
        try:
            obj = _get(store, oid)
        except KeyError:
            if broken is None:
                raise BrokenHistory(ref, oid.decode()) from None
            broken.append(BrokenHistory(ref, oid.decode()))
            return
        if isinstance(obj, Commit):
            heapq.heappush(heap, (-obj.commit_time, obj.id, obj, ref))

    for ref, oid in tips.items():
        push(oid.encode(), ref)
    n = 0
    while heap and (limit is None or n < limit):
        _t, _id, c, ref = heapq.heappop(heap)
        n += 1
        message = c.message.decode("utf-8", "replace")
        yield HistoryEntry(
            oid=c.id.decode(),
            ref=ref,
            at=datetime.fromtimestamp(c.commit_time, UTC),
            message=message,
            renewal=refs.parse_trailers(message).get("Freq-Event") == "renewed",
        )
        for p in c.parents:
            push(p, ref)


@_serial
def chain(repo: Repo, ref: str, tip: str, seen: dict[str, ChainLink]) -> list[ChainLink]:
    """`ref`'s first-parent chain from `tip` down, each commit checked whole (its tree, every
    file of it, and any second parent); the walk ends at a root or at a missing commit.
    `seen` (oid → link) is shared between calls: chains that share commits (a cap slot's
    claim commit is a subject's) are read once."""
    store = repo.object_store
    out: list[ChainLink] = []
    oid: str | None = tip
    while oid is not None:
        link = seen.get(oid)
        if link is None:
            link = seen[oid] = _link(repo, store, ref, oid)
        out.append(link)
        oid = link.parent
    return out


@_serial
def _link(repo: Repo, store: Any, ref: str, oid: str) -> ChainLink:
    try:
        commit = commit_at(repo, oid, ref)
    except BrokenHistory:
        return ChainLink(oid=oid, missing="commit", missing_oid=oid)
    message = commit.message.decode("utf-8", "replace")
    parent = commit.parents[0].decode() if commit.parents else None
    base = {"oid": oid, "parent": parent, "message": message}
    try:
        gap = _first_missing(repo, _tree_of(repo, commit, ref))
    except BrokenHistory:
        return ChainLink(**base, missing="tree", missing_oid=commit.tree.decode())
    if gap is not None:
        return ChainLink(**base, missing=gap[0], missing_oid=gap[1])
    for p in commit.parents[1:]:
        if not _has(store, p):
            return ChainLink(**base, missing="parent", missing_oid=p.decode())
    return ChainLink(**base)


# ------------------------------------------------------------------ the archive
#
# refs/frequency/archive/<factory> (SPEC §3): a chain of fold commits, each a merge whose
# first parent is the archive before it and whose other parents are the last commits of
# the subjects it folds in (their histories stay reachable). Its tree:
#
#     counts.json                    {"<state>": count}: what `status` shows, one read
#     <shard>/index.json             {"<name>": {"tip": "<commit>", "state": "<state>"}}
#     <shard>/<name>/subject.json    the subject's final subject.json (the same blob)
#
# <shard> is refs.archive_shard(name), `ab/c` (4,096 of them, two levels), so a fold
# rewrites only the small trees it touches (the root's 256 entries and, per shard, about
# 25 names at 100,000 subjects) and a lookup reads one shard's index, whatever the archive
# holds.

COUNTS_FILE = "counts.json"
INDEX_FILE = "index.json"
_TREE_MODE = 0o040000
_FILE_MODE = 0o100644


def _json(doc: object) -> bytes:
    import json

    return (json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n").encode()


def _sub(repo: Repo, tree: Tree | None, path: str) -> Any:
    """The object at `path` (`a/b`) below `tree` (None: no such entry)."""
    obj: Any = tree
    for part in path.split("/"):
        if not isinstance(obj, Tree):
            return None
        try:
            _mode, sha = obj[part.encode()]
        except KeyError:
            return None
        obj = _get(repo.object_store, sha)
    return obj


def _copy(tree: Any) -> Tree:
    """A new tree with the entries of `tree` (None or not a tree: empty), to change."""
    out = Tree()
    if isinstance(tree, Tree):
        for entry in tree.iteritems():
            out.add(entry.path, entry.mode, entry.sha)
    return out


def _doc(repo: Repo, tree: Tree | None, name: str, where: str) -> Any:
    import json

    blob = _sub(repo, tree, name)
    if blob is None:
        return {}
    try:
        doc = json.loads(bytes(blob.data))
    except ValueError:
        raise CorruptState(f"{where}: {name} is not JSON") from None
    if not isinstance(doc, dict):
        raise CorruptState(f"{where}: {name} is not an object")
    return doc


@_serial
def archive_tree(repo: Repo, tip: str | None, ref: str) -> Tree | None:
    """The tree of archive commit `tip` (None: no archive yet)."""
    if tip is None:
        return None
    return _tree_of(repo, commit_at(repo, tip, ref), ref)


@_serial
def archive_counts(repo: Repo, tip: str, ref: str) -> dict[str, int]:
    """counts.json of archive commit `tip`: subjects per state."""
    doc = _doc(repo, archive_tree(repo, tip, ref), COUNTS_FILE, ref)
    return {str(k): int(v) for k, v in doc.items() if isinstance(v, int)}


@_serial
def archive_shard(repo: Repo, tip: str, shard: str, ref: str) -> dict[str, tuple[str, str]]:
    """One shard's index of archive commit `tip`: name → (subject's last commit, state)."""
    doc = _doc(repo, _sub(repo, archive_tree(repo, tip, ref), shard), INDEX_FILE, ref)
    out = {}
    for name, e in doc.items():
        if isinstance(e, dict) and isinstance(e.get("tip"), str):
            out[str(name)] = (str(e["tip"]), str(e.get("state", "")))
    return out


@_serial
def archive_fold(
    repo: Repo,
    *,
    tip: str | None,
    ref: str,
    items: Sequence[tuple[str, str, str]],
    identity: bytes,
    at: datetime,
    message: str,
    drop: Sequence[str] = (),
    parent: str | None = None,
) -> tuple[Commit, list[ShaFile]]:
    """The fold commit that adds `items` — (name, subject's last commit, state) — to the
    archive at `tip` (a name already there is replaced) and takes out the names `drop`
    (subjects reopened: their history goes on from their ref again), with its new
    objects. Its first parent is `tip`, or `parent` for a first fold (None: no archive
    yet), the archive's root."""
    root = archive_tree(repo, tip, ref)
    new_root = _copy(root)
    tops: dict[str, Tree] = {}  # the first level of shards, as this fold changes them
    counts: dict[str, int] = {str(k): int(v) for k, v in _doc(repo, root, COUNTS_FILE, ref).items()}
    objs: list[ShaFile] = []
    by_shard: dict[str, list[tuple[str, str, str]]] = {}
    for item in items:
        by_shard.setdefault(refs.archive_shard(item[0]), []).append(item)
    gone: dict[str, list[str]] = {}
    for name in drop:
        gone.setdefault(refs.archive_shard(name), []).append(name)
        by_shard.setdefault(refs.archive_shard(name), [])
    for shard, group in sorted(by_shard.items()):
        top, leaf = shard.split("/")
        if top not in tops:
            tops[top] = _copy(_sub(repo, root, top))
        old = _sub(repo, root, shard)
        shard_tree = _copy(old)
        index = _doc(repo, old, INDEX_FILE, ref)
        for name in gone.get(shard, ()):
            was = index.pop(name, None)
            if isinstance(was, dict) and isinstance(was.get("state"), str):
                counts[was["state"]] = max(0, counts.get(was["state"], 0) - 1)
            with contextlib.suppress(KeyError):
                del shard_tree[name.encode()]
        for name, subject_tip, state in group:
            was = index.get(name)
            if isinstance(was, dict) and isinstance(was.get("state"), str):
                counts[was["state"]] = max(0, counts.get(was["state"], 0) - 1)
            commit = commit_at(repo, subject_tip, f"{ref} ({name})")
            try:
                _mode, blob = _tree_of(repo, commit, ref)[refs.SUBJECT_FILE.encode()]
            except KeyError:
                raise CorruptState(
                    f"{name}: commit {subject_tip[:12]} has no {refs.SUBJECT_FILE}"
                ) from None
            one = Tree()
            one.add(refs.SUBJECT_FILE.encode(), _FILE_MODE, blob)
            objs.append(one)
            shard_tree.add(name.encode(), _TREE_MODE, one.id)
            index[name] = {"tip": subject_tip, "state": state}
            counts[state] = counts.get(state, 0) + 1
        index_blob = Blob.from_string(_json(index))
        shard_tree.add(INDEX_FILE.encode(), _FILE_MODE, index_blob.id)
        objs += [index_blob, shard_tree]
        tops[top].add(leaf.encode(), _TREE_MODE, shard_tree.id)
    for top, tree in tops.items():
        objs.append(tree)
        new_root.add(top.encode(), _TREE_MODE, tree.id)
    counts_blob = Blob.from_string(_json({k: v for k, v in sorted(counts.items()) if v}))
    new_root.add(COUNTS_FILE.encode(), _FILE_MODE, counts_blob.id)
    objs += [counts_blob, new_root]
    c = make_commit(identity, at, message, new_root.id, tip or parent)
    c.parents = [*c.parents, *dict.fromkeys(t.encode() for _n, t, _s in items)]
    return c, [*objs, c]
