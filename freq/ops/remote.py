"""Several machines through one git remote (SPEC §7): `run --remote` and `sync`.

`connect` puts the store in remote mode (every write pushed first, freq.store.mirror);
`exchange` is what `sync` does and what `run --remote` does before it plans: fetch
refs/frequency/*, let the local refs follow, push what is ahead here, and keep (never
force, never drop) what both sides changed, reporting it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from freq import proc
from freq.errors import Hint, UsageError
from freq.ops.app import App
from freq.store.mirror import Mirror
from freq.sync import reconcile


@dataclass(frozen=True, slots=True, kw_only=True)
class Exchanged:
    """What one exchange with the remote did (`sync --json`)."""

    remote: str
    url: str
    followed: int = 0  # local refs brought up to the remote's
    pushed: tuple[str, ...] = ()  # refs this side was ahead on, now on the remote
    lost: tuple[str, ...] = ()  # refs the remote moved while they were pushed (next time)
    refused: tuple[str, ...] = ()  # refs the remote turned away, with its reason
    replayed: tuple[str, ...] = ()  # both sides moved: local events now on the remote
    # both sides moved and some local events no longer apply: `<ref>: <why> (kept at REF)`
    diverged: tuple[str, ...] = field(default=())


def remote_name(app: App, name: str | None) -> str:
    """The remote to use: `name`, else `remote:` of frequency.yaml; UsageError if none."""
    chosen = name or app.config.settings.remote
    if not chosen:
        raise UsageError(
            "no remote given",
            hint=Hint(text="pass --remote NAME or set `remote:` in .frequency/frequency.yaml"),
        )
    return chosen


def connect(app: App, name: str | None) -> Mirror:
    """Put the store in remote mode against remote `name` (or the configured one)."""
    chosen = remote_name(app, name)
    if app.store.mirror is not None and app.store.mirror.name == chosen:
        return app.store.mirror
    got = proc.git(["ls-remote", "--get-url", chosen], cwd=app.store.root)
    url = got.text().strip()
    if not got.ok or not url:
        raise UsageError(f"cannot read remote {chosen!r}: {got.err.decode().strip()}")
    known = proc.git(["config", "--get", f"remote.{chosen}.url"], cwd=app.store.root)
    if not known.ok and url == chosen and "/" not in chosen and ":" not in chosen:
        raise UsageError(
            f"no remote named {chosen!r} in this repository",
            hint=Hint(text="add it with", command=("git", "remote", "add", chosen, "URL")),
        )
    return app.store.attach(chosen, url)


def exchange(app: App, name: str | None = None) -> Exchanged:
    """Fetch, follow, push what is ahead; one report (RemoteUnreachable if it is down)."""
    mirror = connect(app, name)
    found, pushed, lost, refused = mirror.exchange()
    done = reconcile(app.store, found.diverged)
    return Exchanged(
        remote=mirror.name,
        url=mirror.wire.url,
        followed=found.followed,
        pushed=tuple(pushed),
        lost=tuple(lost),
        refused=tuple(refused),
        replayed=tuple(r.ref for r in done if r.applied),
        diverged=tuple(
            f"{r.ref}: {r.refused} event(s) kept at {r.kept}: {r.reason}" for r in done if r.refused
        ),
    )
