"""Watching refs/frequency: one poller shared by every event stream of the dashboard.

Must not import click, dulwich, subprocess or pexpect, nor starlette (this is the watch; `app`
streams it). A change is anything that moves a ref under refs/frequency by any process,
Frequency or plain `git update-ref`: a loose ref is written as `<ref>.lock` then renamed,
which changes the mtime of the folder holding it; `git pack-refs` and bulk writes rewrite
packed-refs; Frequency's own writers also append to the store's beacon. So the token is
the mtimes of the folders of refs/frequency (not of its 5,000 files) and the stat of
packed-refs and of the beacon, read about five times a second; and the files of
`.frequency/`, so a changed configuration reaches the page too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from freq.refs import ROOT

POLL_SECONDS = 0.2  # SPEC §8 asks for updates within a second; a poll is ~1 ms at 5,000 refs
Token = tuple[tuple[str, int, int, int], ...]


def _stat(path: str) -> tuple[str, int, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (path, 0, 0, 0)
    return (path, st.st_mtime_ns, st.st_size, st.st_ino)


def config_token(root: Path) -> Token:
    """A value that changes whenever a file of `.frequency/` is written, added or removed
    (the folder's mtime covers the names, each file's stat its content)."""
    folder = os.path.join(root, ".frequency")
    out = [_stat(folder)]
    try:
        with os.scandir(folder) as it:
            out += [_stat(e.path) for e in it if not e.name.startswith(".")]
    except OSError:
        pass
    out.sort()
    return tuple(out)


def ref_token(common_dir: Path, beacon: Path, root: Path | None = None) -> Token:
    """A value that changes whenever a ref under refs/frequency moves (see the module), or
    with `root`, a file of its `.frequency/` changes (the page then shows the new config)."""
    out = [_stat(str(common_dir / "packed-refs")), _stat(str(beacon))]
    if root is not None:
        out += config_token(root)
    stack = [os.path.join(common_dir, ROOT.rstrip("/"))]
    while stack:
        folder = stack.pop()
        out.append(_stat(folder))
        try:
            with os.scandir(folder) as it:
                stack.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
    out.sort()
    return tuple(out)


class RefWatcher:
    """Counts changes of refs/frequency; every stream waits on the same count."""

    def __init__(
        self,
        common_dir: Path,
        beacon: Path,
        *,
        root: Path | None = None,
        interval: float = POLL_SECONDS,
    ) -> None:
        self.common_dir = common_dir
        self.beacon = beacon
        self.root = root
        self.interval = interval
        self.version = 0
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin polling in the running event loop (the server's lifespan calls this)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        """Stop polling (at shutdown)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _poll(self) -> None:
        last = await asyncio.to_thread(ref_token, self.common_dir, self.beacon, self.root)
        while True:
            await asyncio.sleep(self.interval)
            now = await asyncio.to_thread(ref_token, self.common_dir, self.beacon, self.root)
            if now != last:
                last = now
                async with self._changed:
                    self.version += 1
                    self._changed.notify_all()

    async def wait(self, seen: int, timeout: float) -> int:
        """The change count once it passes `seen`, or after `timeout` seconds unchanged."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.version != seen), timeout
                )
            return self.version
