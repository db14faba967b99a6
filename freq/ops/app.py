"""The App handle for one invocation, and the helpers every action shares (who, snapshot).

Must not import click, dulwich, subprocess or pexpect, and never prints (the Store owns git,
proc owns processes).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from freq import proc
from freq.clock import Clock, SystemClock
from freq.config import load_config
from freq.errors import UnknownFactory
from freq.model import Config, Factory
from freq.refs import DLQ, SUBJECTS, check_name
from freq.runtime import Snapshot
from freq.store import Store

if TYPE_CHECKING:
    from freq.ledger import Ledger


class App:
    """One invocation's handle: where the repository is, the clock, who this worker is."""

    def __init__(
        self,
        cwd: str | os.PathLike[str] = ".",
        *,
        clock: Clock | None = None,
        actor: str | None = None,
    ) -> None:
        self.cwd = Path(cwd)
        self.clock: Clock = clock or SystemClock()
        self._actor = actor
        self._store: Store | None = None
        self._config: Config | None = None
        self._worker: str | None = None
        self._ledger: Ledger | None = None

    @property
    def store(self) -> Store:
        """The repository's state store (opened on first use)."""
        if self._store is None:
            self._store = Store.discover(self.cwd, clock=self.clock)
            root = self._store.root  # a cold snapshot reads subject.json by one git process
            self._store.bulk = lambda specs: proc.cat_files(root, specs)
        return self._store

    @property
    def root(self) -> Path:
        """The repository's working tree root."""
        return self.store.root

    @property
    def config(self) -> Config:
        """The validated configuration (loaded on first use)."""
        if self._config is None:
            self._config = load_config(self.root, cache_dir=self.store.state_dir / "cache")
        return self._config

    @property
    def worker(self) -> str:
        """`host:pid:start-time` of this process."""
        if self._worker is None:
            from freq.proc import worker_identity  # processes: only for who this worker is

            self._worker = worker_identity(self.store.identity.decode().split("@")[-1][:-1])
        return self._worker

    @property
    def ledger(self) -> Ledger:
        """Every attempt end recorded in git, read on first use and kept current by its
        `refresh` (one App, as the dashboard keeps, reads each commit once); what it
        read is saved for the next process (freq/ledger.py)."""
        if self._ledger is None:
            from freq.ledger import Ledger  # history: only commands that count spend

            self._ledger = Ledger(self.store, save=True)
        return self._ledger

    def reload(self) -> Config:
        """Read the configuration again (a long-lived front end after the files changed)."""
        self._config = None
        return self.config

    @property
    def actor(self) -> str:
        """Who acts through this App, as recorded with each change: given by the front end
        (the dashboard passes its user), else `user@host` of this process."""
        if self._actor is None:
            user = os.environ.get("USER") or os.environ.get("LOGNAME") or "unknown"
            self._actor = f"{user}@{self.worker.split(':')[0]}"
        return self._actor

    def factory(self, factory_id: str) -> Factory:
        """The named factory; UnknownFactory naming the known ones otherwise."""
        fac = self.config.factory(factory_id)
        if fac is None:
            known = ", ".join(f.factory_id for f in self.config.factories) or "none"
            raise UnknownFactory(f"unknown factory {factory_id!r} (known: {known})")
        return fac

    def close(self) -> None:
        """Release the repository."""
        if self._store is not None:
            self._store.close()
            self._store = None
            self._ledger = None


def _known(app: App, factory_id: str) -> None:
    """The factory is configured, or its subjects or dead-letter queue are still in git (a
    factory whose file was removed: its history stays readable); UnknownFactory otherwise."""
    if app.config.factory(factory_id) is not None:
        return
    check_name("factory", factory_id)
    if app.store.list_refs(f"{SUBJECTS}{factory_id}/") or app.store.read_ref(DLQ + factory_id):
        return
    app.factory(factory_id)  # raises UnknownFactory naming the known ones


def _snapshot(app: App) -> Snapshot:
    return app.store.snapshot()


def _who(app: App, by: str | None = None) -> str:
    return by or app.actor
