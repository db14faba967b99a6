"""Semantic checks of built factories: pure functions from model records to (JSON path, reason).

Must import only the standard library, freq.model, freq.lanes, freq.patterns and freq.errors:
no yaml, jsonschema, no I/O.
Paths are in a factory's list form (`("steps", 2, "to_state")`, flow steps already expanded);
config.py maps them to file and line and builds the Problems (STYLE habits 1 and 7;
python-statemachine's `_check_*` family).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from freq.lanes import glob_problem, path_glob_problem
from freq.model import (
    ADAPTER_ALIASES,
    ADAPTER_OPTIONS,
    RESUMABLE,
    AgentDef,
    AllOf,
    AnyOf,
    Capacity,
    Changed,
    ClassifyRule,
    Command,
    Factory,
    Isolation,
    Not,
    OnConflict,
    Predicate,
    Respond,
    RetryPolicy,
    Settings,
    Step,
    SubjectState,
    format_duration,
    name_problem,
    resolve_agent,
    template_problem,
)
from freq.patterns import pattern_problem

JsonPath = tuple[str | int, ...]  # keys and indexes into a document (as freq.schemas spells it)
Found = tuple[JsonPath, str]  # one problem: where, and why


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """What a factory's checks may know about the rest of the configuration."""

    factories: Mapping[str, Factory | None]  # every factory id; None when it did not build
    entries: Mapping[str, frozenset[str]]  # states that `emits:` creates subjects in
    agents: Mapping[str, AgentDef] | None = None  # named agents; None: frequency.yaml broken


def build_context(
    owners: Mapping[str, str],
    built: Iterable[Factory],
    agents: Mapping[str, AgentDef] | None = None,
) -> Context:
    """The Context for every factory's checks.

    `owners` maps each factory id in use to the file that owns it (the first to use it),
    `built` are the factories that built, `agents` the named agents of frequency.yaml (None
    when it did not build: agent names are then not checked).
    """
    factories: dict[str, Factory | None] = dict.fromkeys(owners)
    entries: dict[str, set[str]] = {}
    for f in built:
        if owners[f.factory_id] == f.path:
            factories[f.factory_id] = f
        for step in f.steps:
            if step.emits is not None:
                entries.setdefault(step.emits.factory_id, set()).add(step.emits.state)
    return Context(
        factories=factories,
        entries={k: frozenset(v) for k, v in entries.items()},
        agents=agents,
    )


_PREDICATE_KEYS: Mapping[type, str] = {
    SubjectState: "subject_state",
    Capacity: "capacity",
    Changed: "changed",
    Command: "command",
    AllOf: "all",
    AnyOf: "any",
    Not: "not",
}


def _walk(preds: Iterable[Predicate], base: JsonPath) -> Iterator[tuple[JsonPath, Predicate]]:
    """Every predicate of a `requires:` tree with its path (`requires[0].all[1].capacity`)."""
    for k, pred in enumerate(preds):
        yield from _walk_one(pred, (*base, k))


def _walk_one(pred: Predicate, at: JsonPath) -> Iterator[tuple[JsonPath, Predicate]]:
    here = (*at, _PREDICATE_KEYS[type(pred)])
    yield here, pred
    if isinstance(pred, AllOf | AnyOf):
        yield from _walk(pred.items, here)
    elif isinstance(pred, Not):
        yield from _walk_one(pred.item, here)


def _state_mentions(f: Factory) -> Iterator[tuple[JsonPath, str]]:
    """Every place the factory names a state, in file order."""
    yield ("state", "initial"), f.initial
    for k, s in enumerate(f.terminal):
        yield ("state", "terminal", k), s
    for i, step in enumerate(f.steps):
        for j, s in enumerate(step.from_states):
            yield ("steps", i, "from_states", j), s
        yield ("steps", i, "to_state"), step.to_state
        for code, s in step.outcomes.items():
            yield ("steps", i, "outcomes", code), s
        if step.on_terminal is not None:
            yield ("steps", i, "on_terminal"), step.on_terminal


def _lock_problem(name: str) -> str | None:
    """Lock names may use `:` as a separator (`branch:main`); each part is a ref component."""
    parts = name.split(":")
    if len(parts) > 1 and not all(parts):
        return "must not have an empty part around ':'"
    problems = [p for p in map(name_problem, parts) if p]
    return problems[0] if problems else None


def _check_names(f: Factory, ctx: Context) -> Iterator[Found]:
    if problem := name_problem(f.factory_id):
        yield ("factory_id",), f"factory_id {f.factory_id!r} {problem}"
    seen: set[str] = set()
    for path, state in _state_mentions(f):
        if state not in seen and (problem := name_problem(state)):
            yield path, f"state {state!r} {problem}"
        seen.add(state)
    for i, step in enumerate(f.steps):
        if problem := name_problem(step.id):
            yield ("steps", i, "id"), f"step id {step.id!r} {problem}"
        named: set[str] = set()
        for k, lock in enumerate(step.locks):
            if problem := _lock_problem(lock.name):
                yield ("steps", i, "locks", k, "name"), f"lock name {lock.name!r} {problem}"
            elif lock.name in named:
                yield ("steps", i, "locks", k), f"lock {lock.name!r} is named twice in this step"
            named.add(lock.name)


def _check_step_ids(f: Factory, ctx: Context) -> Iterator[Found]:
    first: dict[str, Step] = {}
    for i, step in enumerate(f.steps):
        if step.id in first:
            yield (
                ("steps", i, "id"),
                f"duplicate step id {step.id!r} (first at line {first[step.id].line})",
            )
        first.setdefault(step.id, step)


def _check_reached(f: Factory, ctx: Context) -> Iterator[Found]:
    why = "it is not the initial state and no step leads to it"
    reached = {f.initial, *ctx.entries.get(f.factory_id, ())}
    for step in f.steps:
        reached.update((step.to_state, *step.outcomes.values()))
        reached.update((step.on_terminal,) if step.on_terminal else ())
    for i, step in enumerate(f.steps):
        for j, s in enumerate(step.from_states):
            if s not in reached and s not in f.terminal:  # leaving a terminal: its own check
                yield ("steps", i, "from_states", j), f"state {s!r} is never reached: {why}"


def _check_terminal_left(f: Factory, ctx: Context) -> Iterator[Found]:
    for i, step in enumerate(f.steps):
        for j, s in enumerate(step.from_states):
            if s in f.terminal:
                yield (
                    ("steps", i, "from_states", j),
                    f"state {s!r} is terminal: no step may leave it",
                )


def _check_targets(f: Factory, ctx: Context) -> Iterator[Found]:
    known = {f.initial, *f.terminal}
    for step in f.steps:
        known.update((*step.from_states, step.to_state))
    why = "(not the initial or a terminal state, nor any step's from_states or to_state)"
    for i, step in enumerate(f.steps):
        if step.on_terminal is not None and step.on_terminal not in known:
            yield (
                ("steps", i, "on_terminal"),
                f"on_terminal names unknown state {step.on_terminal!r} {why}",
            )
        for code, s in step.outcomes.items():
            if s not in known:
                yield ("steps", i, "outcomes", code), f"outcomes names unknown state {s!r} {why}"
    for s in f.limits.wip:
        if s not in f.states:
            yield ("limits", "wip", s), f"wip names unknown state {s!r}"


def _check_reference(
    label: str, factory_id: str, at: JsonPath, states: Iterable[tuple[JsonPath, str]], ctx: Context
) -> Iterator[Found]:
    """A `requires:` or `emits:` naming a factory (at `at`) and states of it."""
    if factory_id not in ctx.factories:
        yield (*at, "factory_id"), f"{label} names unknown factory {factory_id!r}"
        return
    target = ctx.factories[factory_id]
    known = target.states if target is not None else ()
    for path, s in states if target is not None else ():  # None: it did not build
        if s not in known:
            yield path, f"{label} names unknown state {s!r} of factory {factory_id!r}"


def _check_references(f: Factory, ctx: Context) -> Iterator[Found]:
    for i, step in enumerate(f.steps):
        for at, pred in _walk(step.requires, ("steps", i, "requires")):
            if isinstance(pred, SubjectState | Capacity):
                states = [((*at, "states", k), s) for k, s in enumerate(pred.states)]
                if isinstance(pred, SubjectState):
                    states += [((*at, "not_states", k), s) for k, s in enumerate(pred.not_states)]
                yield from _check_reference("requires", pred.factory_id, at, states, ctx)
        if step.emits is not None:
            at = ("steps", i, "emits")
            emitted = [((*at, "state"), step.emits.state)]
            yield from _check_reference("emits", step.emits.factory_id, at, emitted, ctx)


def check_backoff(retry: RetryPolicy, at: JsonPath) -> Iterator[Found]:
    """A first delay longer than the cap; `at` is a step's or `defaults:`'s retry.backoff."""
    b = retry.backoff
    if b.initial > b.max:
        yield (
            at,
            (
                f"backoff initial ({format_duration(b.initial)}) is longer than "
                f"max ({format_duration(b.max)})"
            ),
        )


def _check_step_values(f: Factory, ctx: Context) -> Iterator[Found]:
    for i, step in enumerate(f.steps):
        for k, rule in enumerate(step.classify):
            yield from _check_rule(rule, ("steps", i, "classify", k))
        if step.batch is not None and step.batch.min > step.batch.max:
            yield (
                ("steps", i, "batch"),
                f"batch min ({step.batch.min}) is more than max ({step.batch.max})",
            )
        yield from check_backoff(step.retry, ("steps", i, "retry", "backoff"))


def _check_rule(rule: ClassifyRule, at: JsonPath) -> Iterator[Found]:
    if rule.match is None and rule.exit is None:
        yield at, "a classify rule needs match, exit or both"
    if rule.match is not None and (problem := pattern_problem(rule.match)):
        yield (*at, "match"), problem


# Fields of SPEC §2 that the schema describes but `run` does not carry out yet. They are
# refused, one line each, rather than accepted and ignored (a step's `merge:` would otherwise
# be dropped silently and its commit land on the user's branch). Each issue that builds one
# removes its line here.
SINCE = (
    "since: {since!r} is not supported yet (only last_success is carried out); leave it out for now"
)


def _check_not_built(f: Factory, ctx: Context) -> Iterator[Found]:
    for i, step in enumerate(f.steps):
        for at, pred in _walk(step.requires, ("steps", i, "requires")):
            if isinstance(pred, Changed) and pred.since != "last_success":
                yield (*at, "since"), SINCE.format(since=pred.since)


_BAD_BRANCH = re.compile(
    r"(^[-/.])|(\.\.)|(//)|([\s~^:?*\[\\\x00-\x1f\x7f])|(@\{)|([/.]$)|(\.lock$)|(/\.)"
)


def _branch_problem(name: str) -> str | None:
    """Why `name` cannot be a branch (git check-ref-format's rules), or None."""
    if name.startswith("refs/"):
        return f"merge.into names a branch, not a ref: write {name.removeprefix('refs/heads/')!r}"
    if name == "@" or _BAD_BRANCH.search(name):
        return f"merge.into {name!r} is not a valid branch name"
    return None


_TOUCH_FIELD = re.compile(r"\{([^{}]*)\}")


def _check_worktree(f: Factory, ctx: Context) -> Iterator[Found]:
    """`isolation`, `setup`, `merge` and `touches` make sense together or not at all."""
    for i, step in enumerate(f.steps):
        at: JsonPath = ("steps", i)
        worktree = step.isolation is Isolation.WORKTREE
        if not worktree and step.setup is not None:
            yield (*at, "setup"), "setup prepares a worktree: it needs isolation: worktree"
        if not worktree and step.merge is not None:
            yield (*at, "merge"), "merge lands a worktree's branch: it needs isolation: worktree"
        if worktree and step.batch is not None:
            yield (
                (*at, "isolation"),
                "a batch step runs once for many subjects, not in a worktree of one: "
                "use isolation: none",
            )
        if step.batch is not None and step.touches:
            yield (
                (*at, "touches"),
                "a batch step runs once for many subjects: one lane cannot name them all "
                "(leave touches out)",
            )
        into = step.merge.into if step.merge is not None else None
        if into is not None and (problem := _branch_problem(into)):
            yield (*at, "merge", "into"), problem
        if worktree and step.is_gate:
            yield (*at, "isolation"), "a gate runs nothing: isolation: worktree has no use here"
        if step.setup is not None and step.setup.run is None:
            yield (*at, "setup"), "setup needs run: (the command that prepares the worktree)"
        for k, g in enumerate(step.setup.when_changed if step.setup else ()):
            if problem := path_glob_problem(g):  # a git pathspec glob: no templates
                yield (*at, "setup", "when_changed", k), problem
        merge = step.merge
        if merge is not None and merge.on_conflict is OnConflict.AGENT and step.agent is None:
            yield (
                (*at, "merge", "on_conflict"),
                "on_conflict: agent hands the conflict to the step's agent: this step has none "
                "(use retry or terminal)",
            )
        for k, g in enumerate(step.touches):
            for name in _TOUCH_FIELD.findall(g):
                if name != "subject" and not name.startswith("data."):
                    yield (
                        (*at, "touches", k),
                        f"{{{name}}} is not a touches template: use {{subject}} or {{data.KEY}}",
                    )
                    break
            else:
                plain = _TOUCH_FIELD.sub("x", g)
                if problem := glob_problem(plain):
                    yield (*at, "touches", k), problem


def check_settings(settings: Settings) -> Iterator[Found]:
    """Every semantic problem of a built frequency.yaml, as (path, reason)."""
    yield from check_backoff(settings.default_retry, ("defaults", "retry", "backoff"))
    for name, agent in settings.agents.items():
        yield from _check_agent_def(agent, ("agents", name))
        if name == "diagnose" and agent.budget is not None:
            yield (
                ("agents", name, "budget"),
                (
                    "dlq diagnose runs are recorded in the dead-letter queue, not counted against "
                    "budgets: leave budget out of the diagnose agent"
                ),
            )


def _builtin_names() -> str:
    return ", ".join((*ADAPTER_OPTIONS, *ADAPTER_ALIASES))


def _check_respond(rules: Iterable[Respond], tty: bool, at: JsonPath) -> Iterator[Found]:
    for k, rule in enumerate(rules):
        if problem := pattern_problem(rule.expect):
            yield (*at, k, "expect"), problem
    if not tty and any(True for _ in rules):
        yield at, "respond rules answer a terminal's prompts: set tty: true, or leave them out"


def _check_adapter_fits(agent: AgentDef, at: JsonPath) -> Iterator[Found]:
    """Settings the adapter cannot carry out are refused, not ignored."""
    if agent.use == "command":
        if agent.model:
            yield (*at, "model"), "a command agent takes no model: pass it in args:"
        for key, given in (("prices", agent.prices), ("budget", agent.budget)):
            if given:
                yield (*at, key), f"a command agent reports no tokens or cost: {key} cannot apply"
    if agent.tty and agent.options.get("prompt_via") == "stdin":
        yield (
            (*at, "prompt_via"),
            (
                "prompt_via: stdin cannot reach a program under tty: true (the terminal is its "
                "stdin); use arg or file"
            ),
        )


def _check_agent_def(agent: AgentDef, at: JsonPath) -> Iterator[Found]:
    """A named agent: its keys belong to its adapter; a command agent names its program."""
    own = ADAPTER_OPTIONS[agent.use]
    for key in agent.options:
        if key not in own:
            owners = [a for a, keys in ADAPTER_OPTIONS.items() if key in keys]
            yield (
                (*at, key),
                f"{key} is a setting of {' and '.join(owners)} agents, not {agent.use}",
            )
    if agent.use == "command" and not agent.args:
        yield (*at, "args"), "a command agent needs args: the program and its arguments"
    if agent.use == "command" and agent.bin is not None:
        yield (*at, "bin"), "a command agent names its program as the first of args, not bin"
    yield from _check_adapter_fits(agent, at)
    yield from _check_respond(agent.respond, agent.tty, (*at, "respond"))


def _check_agents(f: Factory, ctx: Context) -> Iterator[Found]:
    for i, step in enumerate(f.steps):
        call = step.agent
        if call is None:
            if step.verify is not None:
                yield (
                    ("steps", i, "verify"),
                    "verify checks an agent's work: on a run: step, end the command with the check",
                )
            continue
        at: JsonPath = ("steps", i, "agent")
        if step.run is not None:
            yield ("steps", i), "a step has run: or agent:, not both"
        named = ctx.agents or {}
        builtin = call.use in ADAPTER_OPTIONS or call.use in ADAPTER_ALIASES
        if not builtin and ctx.agents is not None and call.use not in named:
            names = ", ".join(sorted(named)) or "none"
            yield (
                (*at, "use"),
                f"unknown agent {call.use!r} (built-in: {_builtin_names()}; "
                f"named in frequency.yaml: {names})",
            )
            continue
        if not builtin and ctx.agents is None:
            continue  # frequency.yaml did not build: its agents cannot be judged
        agent = resolve_agent(call, named)
        if call.model and agent.use == "command":
            yield (*at, "model"), "a command agent takes no model: pass it in args:"
        if call.tty and agent.options.get("prompt_via") == "stdin":
            yield (
                (*at, "tty"),
                (
                    "tty: true cannot take the prompt on stdin (prompt_via: stdin of "
                    f"{agent.name}): the terminal is its stdin"
                ),
            )
        if step.outcomes and agent.use != "command":
            yield (
                ("steps", i, "outcomes"),
                (
                    f"outcomes map exit codes, and {agent.use}'s do not say how the work went: "
                    "map them on a command agent or a run: step after this one"
                ),
            )
        priced = agent.prices or agent.budget or f.limits.budget
        if agent.use == "codex" and priced and not agent.model:
            yield (
                (*at, "use"),
                (
                    "codex does not print its model: give model: (on the agent or the step) so "
                    "that prices and budgets apply to it"
                ),
            )
        if agent.use == "command" and not agent.args:
            yield (
                (*at, "use"),
                (
                    "the command agent needs its program: define a named agent "
                    "{use: command, args: [PROGRAM, ...]} in frequency.yaml, or give args:"
                ),
            )
        if call.resume and agent.use not in RESUMABLE:
            yield (
                (*at, "resume"),
                (
                    f"resume continues a session, which a {agent.use} agent does not keep "
                    f"(claude, codex and gemini do)"
                ),
            )
        if not call.prompt and not call.prompt_file:
            yield at, "an agent step needs prompt: or prompt_file:"
        if call.prompt and (problem := template_problem(call.prompt)):
            yield (*at, "prompt"), problem
        yield from _check_respond(call.respond, agent.tty, (*at, "respond"))


_FACTORY_CHECKS: tuple[Callable[[Factory, Context], Iterator[Found]], ...] = (
    _check_names,
    _check_step_ids,
    _check_reached,
    _check_terminal_left,
    _check_targets,
    _check_references,
    _check_step_values,
    _check_agents,
    _check_not_built,
    _check_worktree,
)


def check_factory(f: Factory, ctx: Context) -> Iterator[Found]:
    """Every semantic problem of one built factory, as (list-form path, reason)."""
    for check in _FACTORY_CHECKS:
        yield from check(f, ctx)


def dead_ends(factory: Factory) -> tuple[str, ...]:
    """Non-terminal states that no step leaves: subjects rest there (a note, not a problem)."""
    left = {s for step in factory.steps for s in step.from_states}
    return tuple(s for s in factory.states if s not in left and s not in factory.terminal)
