"""Listing refs at the cost of what changed: one stat per loose ref, a read per new one, and
packed-refs parsed once per version of the file.

Imports only the standard library and freq.store.refdb (git's packed-refs format). A loose
ref is replaced by renaming a new file over it (git and Frequency both write refs that
way), so a ref whose file has the same inode, size, modification and change time as at the
last read holds the same value, and its file is not opened again. That is git's own
racy-git rule for its index, with its guard: a file changed so recently that another
change in the same clock tick could leave all four the same (the file system stamps times
from a coarse clock) is read again at every listing until it is older than RACY_NS. A stat
is one system call where a read is three, and no file is held open, so listing 500
unchanged refs costs a tenth of reading them.

packed-refs is replaced by rename too (by git and by Frequency), so the same stat, under
the same guard, stands for the same version of it.

The memos are caches in memory only: never written anywhere, and the files decide.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Callable, Iterable

from freq.store import refdb

# how old (nanoseconds, by the file's change time) a ref file must be before its stat is
# trusted to stand for its value: well above a coarse clock's tick (1-10 ms), so that a
# change in the tick of the last read cannot leave the stat as it was
RACY_NS = 250_000_000

Signature = tuple[int, int, int, int]
_MOVES_KEPT = 8192  # a handle's own ref moves remembered for its kept listings (OwnWrites)


def _signature(st: os.stat_result) -> Signature:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _settled(st: os.stat_result, now_ns: int) -> bool:
    """Whether the file's stat may stand for its content: it changed longer than RACY_NS
    ago, so that no change in the clock tick of this read can have left the stat as it was."""
    return st.st_ctime_ns < now_ns - RACY_NS


class LooseRefs:
    """Reads loose ref files below a folder, remembering each value by its file's stat."""

    def __init__(self, now_ns: Callable[[], int] = time.time_ns) -> None:
        # file-system times are real time, whatever clock the Store runs on: `now_ns` is
        # given only by tests that make the files look older than they are
        self._now_ns = now_ns
        # folder path -> {entry name -> (signature, value)}; rebuilt at each listing of the
        # folder, so a removed ref leaves nothing behind
        self._memo: dict[str, dict[str, tuple[Signature, str]]] = {}

    def scan(self, folder: str, name: str, out: dict[str, str]) -> None:
        """Every loose ref below `folder` (whose ref name is `name`, ending in /) into `out`
        as ref name → value (its file's first line); lock files are skipped, and an
        unreadable file is listed as "unreadable" so that its reader reports it."""
        try:
            it = os.scandir(folder)
        except (FileNotFoundError, NotADirectoryError):
            self._memo.pop(folder, None)
            return
        before = self._memo.get(folder, {})
        now: dict[str, tuple[Signature, str]] = {}
        now_ns = self._now_ns()
        with it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    self.scan(entry.path, f"{name}{entry.name}/", out)
                    continue
                if entry.name.endswith(".lock"):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                sig = _signature(st)
                hit = before.get(entry.name)
                if hit is not None and hit[0] == sig:
                    value = hit[1]
                else:
                    try:
                        with open(entry.path, "rb") as f:
                            value = f.read(128).strip().decode("ascii", "replace")
                    except (FileNotFoundError, IsADirectoryError):
                        continue
                    except OSError:  # unreadable (permissions): listed, so that its reader
                        out[name + entry.name] = "unreadable"  # reports it, not silence
                        continue
                # a stat taken before the read stands for what was read or for an older
                # file: either way a later replacement has another stat
                if _settled(st, now_ns):
                    now[entry.name] = (sig, value)
                out[name + entry.name] = value
        self._memo[folder] = now


class PackedRefs:
    """packed-refs of one repository as ref → commit id, parsed again only when the file
    was replaced, with its names sorted for listing a prefix without a scan of all."""

    def __init__(self, common_dir: str, now_ns: Callable[[], int] = time.time_ns) -> None:
        self._now_ns = now_ns  # as LooseRefs'
        self._path = os.path.join(common_dir, "packed-refs")
        self._common_dir = common_dir
        # (stat that stands for it or None, table, sorted names): one tuple, replaced whole,
        # so that two threads reading two versions never pair one's stat with the other's
        self._state: tuple[Signature | None, dict[str, str], list[str]] = (None, {}, [])

    def get(self, ref: str) -> str | None:
        return self._current()[1].get(ref)

    def under(self, prefix: str) -> dict[str, str]:
        """The packed refs whose names start with `prefix`, as a new dict."""
        _, table, names = self._current()
        lo = bisect.bisect_left(names, prefix)
        hi = bisect.bisect_left(names, prefix + "\U0010ffff", lo)
        return {n: table[n] for n in names[lo:hi]}

    def _current(self) -> tuple[Signature | None, dict[str, str], list[str]]:
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return (None, {}, [])
        key = _signature(st)
        state = self._state
        if state[0] == key:
            return state
        entries = refdb.Packed.read(self._common_dir).entries
        table = {n.decode("utf-8", "replace"): o.decode("ascii", "replace") for n, o, _ in entries}
        state = (key if _settled(st, self._now_ns()) else None, table, sorted(table))
        self._state = state
        return state


class OwnWrites:
    """Listings kept between reads by one long-lived handle (the run loop's), for as long as
    no other process moved a ref: a listing is then the last one plus the handle's own
    writes since, with no ref file looked at. At 500 subjects that is the difference between
    a stat of every ref at each cycle and none.

    Whether another process wrote is the beacon's word (freq.store.beacon): every Frequency
    writer rings it, and `git pack-refs` or a bulk write replace packed-refs, which its
    token covers. A plain git process moving a loose ref (`git update-ref`) rings nothing,
    so a kept listing is trusted for `trust` seconds of real time at most, then scanned
    again: a read may be that much behind such a write, never further. Every write is a
    CAS, so a plan made from it can lose a race and never overwrite."""

    def __init__(
        self,
        token: Callable[[], tuple[int, ...]],
        others_wrote: Callable[[tuple[int, ...]], bool],
        trust: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._token = token
        self._others_wrote = others_wrote
        self._trust = trust
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # this handle's ref moves in order: (ref, new value or None when deleted); entry i
        # is number `_base + i`, and a kept listing holds every move numbered below its own
        self._moves: list[tuple[str, str | None]] = []
        self._base = 0
        # prefix -> (beacon token before its scan, moves included, when scanned, refs)
        self._kept: dict[str, tuple[tuple[int, ...], int, float, dict[str, str]]] = {}
        self._forgotten = 0  # how often forget ran: a scan begun before it is not kept

    def wrote(self, moves: Iterable[tuple[str, str | None]]) -> None:
        """Record ref moves this handle made, once they took effect on disk."""
        with self._lock:
            self._moves += moves
            if len(self._moves) > _MOVES_KEPT:  # a listing older than the rest scans again
                drop = len(self._moves) - _MOVES_KEPT // 2
                del self._moves[:drop]
                self._base += drop

    def forget(self) -> None:
        """Let every kept listing go: a write failed part-way, or found a ref elsewhere
        than expected (a listing behind the files), so the files decide."""
        with self._lock:
            self._kept.clear()
            self._forgotten += 1

    def before_scan(self) -> tuple[tuple[int, ...], int, int]:
        """What a scan about to start is as of: the beacon's token, the moves so far, and
        how often the listings were let go."""
        with self._lock:
            return self._token(), self._base + len(self._moves), self._forgotten

    def scanned(
        self, prefix: str, mark: tuple[tuple[int, ...], int, int], found: dict[str, str]
    ) -> None:
        """Keep the listing of `prefix` a scan found (`mark`: before_scan's, taken first);
        not when a write failed part-way meanwhile (its moves are in no record)."""
        token, seq, forgotten = mark
        with self._lock:
            if forgotten == self._forgotten:
                self._kept[prefix] = (token, seq, self._monotonic(), dict(found))

    def listing(self, prefix: str) -> dict[str, str] | None:
        """The refs under `prefix` without a scan, or None when one is due: nothing kept,
        kept too long, another process wrote, or this handle's moves since were let go."""
        with self._lock:  # threads share the kept listings: each is brought up to date whole
            kept = self._kept.get(prefix)
            if kept is None:
                return None
            token, seq, at, found = kept
            if (
                self._monotonic() - at > self._trust
                or seq < self._base
                or self._others_wrote(token)
            ):
                del self._kept[prefix]
                return None
            for ref, new in self._moves[seq - self._base :]:
                if not ref.startswith(prefix):
                    continue
                if new is None:
                    found.pop(ref, None)
                else:
                    found[ref] = new
            self._kept[prefix] = (token, self._base + len(self._moves), at, found)
            return dict(found)
