"""The wire to a coordination remote: compare-and-swap pushes and narrow fetches (SPEC §7).

With freq.store.git, the only modules that import dulwich. Every transport git serves
(file://, ssh, git:// and http(s)) goes through dulwich's client, never through `git push`
or `git fetch` processes: a push is one connection to `git receive-pack` (a local remote
through `SubprocessGitClient`: dulwich's in-process local client applied one ref of an
"atomic" push while rejecting the other, GIT-NOTES gap 6; receive-pack re-checks every
old value under its own lock and honours `atomic`). A fetch asks only for the prefixes
given (protocol v2 `ls-refs` with `ref-prefix` where the server offers it) and names as
haves only the local values of the refs that moved, so its cost follows what changed, not
how many refs there are.

Errors are Frequency's: a ref that was not at its expected value is RefConflict (a lost
race: fetch and re-plan, never force); a remote that cannot be reached is
RemoteUnreachable; any other refusal (a server hook, no atomic support) is RemoteRefused
with the remote's own line.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from tempfile import SpooledTemporaryFile
from typing import Any

from dulwich.client import (
    GitClient,
    SubprocessGitClient,
    get_transport_and_path,
)
from dulwich.errors import GitProtocolError, HangupException, NotGitRepository
from dulwich.object_store import ObjectStoreGraphWalker
from dulwich.objects import ZERO_SHA, ShaFile
from dulwich.pack import PackFileDisappeared, pack_objects_to_data
from dulwich.repo import Repo

from freq.errors import RefConflict, RemoteRefused, RemoteUnreachable
from freq.store.git import OBJECTS
from freq.store.records import UNCHECKED, RefUpdate

_LOST = (b"stale info", b"fetch first", b"non-fast-forward", b"failed to lock", b"cannot lock")


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one fetch saw: every remote ref under the prefixes asked for → its commit id
    (the objects of each are now in the local object store)."""

    refs: dict[str, str]


def _local_path(url: str) -> str | None:
    """The repository path of a local remote (a path or file:// URL), else None."""
    if url.startswith("file://"):
        return url[len("file://") :]
    if "://" not in url and (":" not in url.split("/", 1)[0] or os.path.exists(url)):
        return url  # a path (`host:path` is ssh, as git reads it)
    return None


def _client(url: str, *, fetch: bool = False) -> tuple[GitClient, str]:
    """A dulwich client and path for `url`; a local path or file:// URL gets the
    subprocess client (receive-pack's atomic pushes), never dulwich's local one. A local
    fetch asks upload-pack for protocol v2 (so that `ref-prefix` filters on its side): a
    local upload-pack reads the version from GIT_PROTOCOL, which dulwich does not set."""
    path = _local_path(url)
    if path is None:
        client, path = get_transport_and_path(url)
        return client, path
    local = SubprocessGitClient()
    if fetch:
        local.git_command = ["env", "GIT_PROTOCOL=version=2", "git"]
    return local, path


def _unreachable(name: str, exc: BaseException) -> RemoteUnreachable:
    text = str(exc).strip().splitlines()
    why = text[-1] if text else type(exc).__name__
    return RemoteUnreachable(
        f"remote {name} cannot be reached ({why})",
        hint="Frequency stops claiming and keeps finished results until a push succeeds",
    )


class Wire:
    """One remote: its name and URL, and a dulwich client for each of push and fetch."""

    def __init__(self, name: str, url: str, *, prefixes: Sequence[str]) -> None:
        self.name = name
        self.url = url
        self.prefixes = tuple(prefixes)
        self._client, self._path = _client(url)
        self._fetcher, _ = _client(url, fetch=True)
        self._local = _local_path(url)
        self._lock = threading.Lock()

    def _here(self) -> None:
        """A local remote that is not there is unreachable, said without starting a git
        that would only fail (and whose pipes dulwich then leaves open)."""
        if self._local is not None and not os.path.isdir(self._local):
            raise _unreachable(self.name, FileNotFoundError(f"{self._local} does not exist"))

    # ------------------------------------------------------------ fetch

    def fetch(
        self,
        repo: Repo,
        local: dict[str, str],
        *,
        names: Sequence[str] = (),
        haves: Sequence[str] = (),
    ) -> Fetched:
        """The remote's refs under the prefixes (or exactly `names`, when given), with the
        objects of each tip that the local repository lacks. `local`: this repository's
        values of the same refs (the haves of the refs that moved); `haves`: more commits
        the new ones build on (a branch's last known tip)."""
        exact = {n.encode() for n in names}
        prefixes = tuple(exact) if exact else tuple(p.encode() for p in self.prefixes)
        store = repo.object_store
        seen: dict[bytes, bytes] = {}

        with OBJECTS:
            known = [h.encode() for h in haves if h.encode() in store]
        walker = ObjectStoreGraphWalker(known, _parents(store))

        def wants(remote_refs: dict[bytes, bytes], depth: int | None = None) -> list[bytes]:
            """The tips this repository lacks; and, into the graph walker's heads (read
            once negotiation starts), the local values of the refs that moved: what the
            new commits build on."""
            out: dict[bytes, None] = {}
            with OBJECTS:  # `in store` reads dulwich's pack cache, shared with other threads
                return _wanted(remote_refs, out)

        def _wanted(remote_refs: dict[bytes, bytes], out: dict[bytes, None]) -> list[bytes]:
            for name, oid in remote_refs.items():
                if (name not in exact) if exact else not name.startswith(prefixes):
                    continue
                if name.endswith(b"^{}"):
                    continue
                seen[name] = oid
                if oid != ZERO_SHA and oid not in store:
                    out[oid] = None
                mine = local.get(name.decode("utf-8", "replace"))
                if mine is not None and mine.encode() != oid and mine.encode() in store:
                    walker.heads.add(mine.encode())
            return list(out)

        self._here()
        with SpooledTemporaryFile(max_size=16 << 20, prefix="incoming-") as spool:
            try:
                with self._lock:
                    self._fetcher.fetch_pack(
                        self._path, wants, walker, spool.write, ref_prefix=list(prefixes)
                    )
                if spool.tell():
                    _add_pack(store, spool)
            except (HangupException, OSError, NotGitRepository, GitProtocolError) as exc:
                raise _unreachable(self.name, exc) from None
        return Fetched({n.decode(): o.decode() for n, o in seen.items()})

    # ------------------------------------------------------------ push

    def push(
        self,
        repo: Repo,
        updates: Sequence[RefUpdate],
        objects: Sequence[ShaFile] | None,
        *,
        atomic: bool = True,
    ) -> dict[str, str]:
        """Move each ref of `updates` on the remote from its expected value to its new one:
        all or none (`atomic`), or each on its own. `objects`: every object the new values
        need beyond what the expected values reach (None: found by walking from the new
        values down to the expected ones). The remote's refs as advertised before the push
        (under the prefixes). Raises RefConflict (naming the first ref that had moved),
        RemoteRefused, RemoteUnreachable."""
        wanted = {u.ref.encode(): u for u in updates}
        advertised: dict[str, str] = {}
        prefixes = tuple(p.encode() for p in self.prefixes)
        lost: list[str] = []

        def update_refs(remote_refs: dict[bytes, bytes]) -> dict[bytes, bytes]:
            for name, oid in remote_refs.items():
                if name.startswith(prefixes):
                    advertised[name.decode("utf-8", "replace")] = oid.decode()
            out: dict[bytes, bytes] = {}
            for name, u in wanted.items():
                there = remote_refs.get(name)
                expected = u.expected.encode() if u.expected is not None else None
                if u.expected != UNCHECKED and there != expected:
                    lost.append(u.ref)
                    if atomic:
                        return {}  # nothing is sent: the batch lost its race
                    continue
                out[name] = u.new.encode() if u.new is not None else ZERO_SHA
            return out

        def pack(have: Any, want: Any, ofs_delta: bool = False, progress: Any = None) -> Any:
            if objects is not None:
                return pack_objects_to_data(list(objects))
            # the walk reads through dulwich's pack cache, which the other threads' reads
            # share: under their lock, all of it (the objects are sent once it is let go)
            with OBJECTS:
                haves = [
                    u.expected.encode()
                    for u in updates
                    if u.expected not in (None, UNCHECKED)
                    and u.expected.encode() in repo.object_store
                ]
                wants = [u.new.encode() for u in updates if u.new is not None]
                count, found = repo.object_store.generate_pack_data(haves, wants, ofs_delta=False)
                return count, iter(list(found))

        said: list[bytes] = []
        self._here()
        try:
            with self._lock:
                result = self._client.send_pack(
                    self._path,
                    update_refs,
                    pack,
                    progress=said.append,
                    atomic=atomic,
                )
        except GitProtocolError as exc:
            if "atomic" in str(exc):
                raise RemoteRefused(
                    f"remote {self.name} does not support atomic pushes, which Frequency "
                    "needs to move a claim and its cap slots together",
                    hint="serve the repository with git 2.4 or later (receive-pack --atomic)",
                ) from None
            if isinstance(exc, HangupException) or not said:
                raise _unreachable(self.name, exc) from None
            raise RemoteRefused(f"remote {self.name}: {_last_line(said) or exc}") from None
        except (OSError, NotGitRepository) as exc:
            raise _unreachable(self.name, exc) from None
        if lost:
            raise RefConflict(lost[0], f"lost race on {lost[0]}: remote {self.name} moved it")
        failed = {
            name.decode("utf-8", "replace"): (why.encode() if isinstance(why, str) else why)
            for name, why in (result.ref_status or {}).items()
            if why is not None
        }
        if failed:
            text = b"".join(said)
            for ref, reason in failed.items():  # receive-pack re-checked each old value
                if any(k in reason for k in _LOST):
                    raise RefConflict(ref, f"lost race on {ref}: remote {self.name} moved it")
            if b"but expected" in text or b"cannot lock ref" in text:
                ref = next(iter(failed))
                raise RefConflict(ref, f"lost race on {ref}: remote {self.name} moved it")
            ref, reason = next(iter(failed.items()))
            hook = _last_line(said)
            raise RemoteRefused(
                f"remote {self.name} refused {ref}: {hook or reason.decode('utf-8', 'replace')}"
            )
        return advertised


def _last_line(said: list[bytes]) -> str:
    """The last line the remote printed (a hook's refusal), without `remote:` noise."""
    text = b"".join(said).decode("utf-8", "replace").replace("\r", "\n")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Counting", "Resolving"))]
    return lines[-1] if lines else ""


def _parents(store: Any) -> Callable[[bytes], list[bytes]]:
    def get(oid: bytes) -> list[bytes]:
        try:
            with OBJECTS:  # dulwich's pack cache: shared with the other threads' reads
                return list(store[oid].parents)
        except KeyError:
            return []

    return get


def _add_pack(store: Any, spool: Any) -> None:
    """Add the fetched pack to the object store. A `git gc` (git's auto gc included) that
    repacks meanwhile removes a pack dulwich was looking at (PackFileDisappeared): the
    store rescans its folder of packs at the next look, so the pack is added again from
    the spooled copy, up to three times."""
    for tries in range(3):
        spool.seek(0)
        try:
            with OBJECTS:
                store.add_thin_pack(spool.read, None)
            return
        except PackFileDisappeared:
            if tries == 2:
                raise
