"""Project actions: `init` (starter .frequency/ texts), `validate`, and what `graph` draws.

Must not import click, dulwich, subprocess or pexpect, and never prints: each function takes an
App and plain values and returns a result dataclass (or raises a FreqError).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from freq.checks import dead_ends
from freq.config import check_not_a_file, expand_config
from freq.errors import ConfigError, FreqError, Hint, Problem
from freq.model import Config, Factory
from freq.ops.app import App

STARTER_SETTINGS = """\
# Frequency settings (all optional). Reference: docs/config.md
# Global cap on steps running at once, across every worker process.
max_parallel: 4
# Claims on running steps are leases renewed every ttl/3; a worker that stops renewing
# is presumed lost after ttl and its attempt is recorded as failed (retryable).
lease:
  ttl: 60s
defaults:
  timeout: 30m
  retry:
    max_attempts: 3
    backoff: {initial: 15s, factor: 2, max: 90s, jitter: 0.2}
"""

STARTER_BUILD = """\
# A factory is a state machine: subjects move from state to state when steps succeed.
# Add a subject:   git freq add build my-app
# Run until idle:  git freq run --until-idle
# Read history:    git log refs/frequency/subjects/build/my-app
factory_id: build
description: Build an app, from selection to promotion.
state:
  initial: selected
  terminal: [promoted, failed]
steps:
  - id: implement
    from_states: [selected]
    to_state: implemented
    # Each step is a shell command run at the repository root; exit 0 moves the subject on.
    run: echo "implementing $FREQ_SUBJECT (attempt $FREQ_ATTEMPT)"
    timeout: 40m
  - id: review
    from_states: [implemented]
    to_state: reviewed
    run: echo "reviewing $FREQ_SUBJECT"
    # Exit code 3 sends the subject back to be implemented again.
    outcomes: {3: selected}
  - id: build_validate
    from_states: [reviewed]
    to_state: validated
    run: echo "validating $FREQ_SUBJECT"
  - id: promote
    from_states: [validated]
    to_state: promoted
    run: echo "promoting $FREQ_SUBJECT"
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class InitResult:
    """Files `init` wrote."""

    written: tuple[str, ...]


def init_project(app: App, *, force: bool = False) -> InitResult:
    """Write a commented starter .frequency/ (settings + the seed's build factory)."""
    folder = app.root / ".frequency"
    check_not_a_file(folder)
    files = {"frequency.yaml": STARTER_SETTINGS, "build.yaml": STARTER_BUILD}
    existing = [n for n in files if (folder / n).exists()]
    if existing and not force:
        raise FreqError(
            f".frequency/{existing[0]} already exists; nothing was written",
            hint=Hint(text="overwrite them: pass", option="force"),
        )
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return InitResult(written=tuple(f".frequency/{n}" for n in files))


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidateResult:
    """A valid configuration: what it holds, notes, and the `--expand` form."""

    factories: tuple[str, ...]
    notes: tuple[str, ...]
    expanded: Mapping[str, object] | None = None


def validate(app: App, *, expand: bool = False) -> ValidateResult:
    """Check every config file (ConfigError lists all problems); optionally expand `flow:`."""
    cfg = app.config
    if problems := _prompt_files(app, cfg):
        raise ConfigError(problems)
    notes = tuple(
        f"{f.path}: state {s!r} is not terminal and no step leaves it (subjects rest there)"
        for f in cfg.factories
        for s in dead_ends(f)
    )
    return ValidateResult(
        factories=tuple(f.factory_id for f in cfg.factories),
        notes=notes,
        expanded=expand_config(app.root) if expand else None,
    )


def _prompt_files(app: App, cfg: Config) -> list[Problem]:
    """Agent steps' prompt files that `run` could not read or render (each attempt would
    fail, terminal): checked by `validate`, which reads the repository's files anyway."""
    found = []
    for f in cfg.factories:
        for i, step in enumerate(f.steps):
            name = step.agent.prompt_file if step.agent is not None else None
            if name is None:
                continue
            from freq.attempts import PromptMissing, read_prompt_file  # the run path's own

            try:
                read_prompt_file(app.root, name)
            except PromptMissing as exc:
                where = f"$.steps[{i}].agent.prompt_file"
                found.append(Problem(path=f.path, line=step.line, where=where, reason=str(exc)))
    return found


@dataclass(frozen=True, slots=True, kw_only=True)
class GraphInput:
    """What `graph` draws."""

    factories: tuple[Factory, ...] = field(default_factory=tuple)
    focus: str | None = None  # draw this one whole, the others only where they meet it


def graph_input(app: App, factory_id: str | None = None) -> GraphInput:
    """The factories to draw: all of them with their cross-factory edges, or one (`focus`)
    with every factory it has an edge with (render.graph draws only the states involved)."""
    if factory_id:
        app.factory(factory_id)
        return GraphInput(factories=app.config.factories, focus=factory_id)
    return GraphInput(factories=app.config.factories)
