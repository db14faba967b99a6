"""`discover`: create the subjects each factory's `subjects.discover` finds.

Must not import click, dulwich or subprocess (discovery runs commands through proc).
"""

from __future__ import annotations

from freq import discovery
from freq.ops.app import App


def discover(app: App, factory_id: str | None = None) -> tuple[discovery.Found, ...]:
    """Run discovery for one factory, or every factory that has `subjects.discover`."""
    factories = (
        [app.factory(factory_id)] if factory_id else [f for f in app.config.factories if f.discover]
    )
    return tuple(
        discovery.discover(app.store, f, clock=app.clock, worker=app.worker) for f in factories
    )
