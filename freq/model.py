"""Frozen records of configuration (factories, steps, predicates, settings), the closed
vocabularies they use, durations and names.

Imports only the standard library. Everything here is an immutable value; runtime state
(subjects, claims, events, snapshots) is freq/runtime.py.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import Enum
from types import MappingProxyType

# ---------------------------------------------------------------- durations

_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")


# Longer than any lease, timeout or backoff anyone means (27 years), and far inside what
# timedelta and datetime arithmetic can hold (`99999999999d` overflowed them).
MAX_DURATION = timedelta(days=10000)


class DurationTooLong(ValueError):
    """A well-formed duration above MAX_DURATION."""


def parse_duration(text: str | int | float) -> timedelta:
    """Parse `90s`, `40m`, `2h`, `1d`, `1h30m`, `500ms` (or a number of seconds).

    Raises ValueError with a one-line reason on anything else, and its subclass
    DurationTooLong on a duration longer than MAX_DURATION.
    """
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"duration must not be negative: {text!r}")
        _check_length(text, text * 1000)
        return timedelta(seconds=text)
    m = _DURATION_RE.match(text.strip())
    if not text.strip() or m is None or not any(m.groups()):
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 40m, 2h, 1d, 1h30m)")
    d, h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
    _check_length(text, (((d * 24 + h) * 60 + mi) * 60 + s) * 1000 + ms)  # ints: no overflow
    return timedelta(days=d, hours=h, minutes=mi, seconds=s, milliseconds=ms)


def _check_length(text: str | int | float, total_ms: float) -> None:
    if total_ms > MAX_DURATION // timedelta(milliseconds=1):
        raise DurationTooLong(f"{text!r} is too long (at most {MAX_DURATION.days}d)")


def format_duration(td: timedelta) -> str:
    """Render a timedelta compactly: `1h30m`, `45s`, `250ms`."""
    total_ms = round(td.total_seconds() * 1000)
    if total_ms < 1000:
        return f"{total_ms}ms"
    secs, ms = divmod(total_ms, 1000)
    out = []
    days, secs = divmod(secs, 86400)
    hours, secs = divmod(secs, 3600)
    mins, secs = divmod(secs, 60)
    for n, unit in ((days, "d"), (hours, "h"), (mins, "m"), (secs, "s")):
        if n:
            out.append(f"{n}{unit}")
    if ms and not days and not hours:
        out.append(f"{ms}ms")
    return "".join(out) or "0s"


# ---------------------------------------------------------------- names

_FIRST, _REST = r"[A-Za-z0-9_]", r"[A-Za-z0-9._+@-]"  # a name's characters, first and after
_NAME_RE = re.compile(f"{_FIRST}{_REST}*")
# one ref component as _name_fault's rules allow it, but for "..", which the whole match
# must rule out with a lookahead (NO_DOUBLE_DOT): a pattern to build checks of refs from
NAME_PATTERN = _FIRST + _REST + r"{0,199}(?<!\.)(?<!\.lock)"
NO_DOUBLE_DOT = r"(?!.*\.\.)"
# every rule of _name_fault in one match: what a snapshot checks for 100,000 names
_GOOD_NAME = re.compile(NO_DOUBLE_DOT + NAME_PATTERN)


def name_problem(name: str) -> str | None:
    """Why `name` cannot be one ref component (factory, subject, lock), or None if it can."""
    if _GOOD_NAME.fullmatch(name):
        return None
    return _name_fault(name)


def _name_fault(name: str) -> str | None:
    """name_problem's rules one at a time, for the reason (None: none is broken)."""
    if not name:
        return "is empty"
    if len(name) > 200:
        return "is longer than 200 characters"
    if not _NAME_RE.fullmatch(name):
        return "may hold only letters, digits and . _ + @ - and must not start with . or -"
    if ".." in name or name.endswith((".", ".lock")):
        return "must not contain '..' or end with '.' or '.lock'"
    return None


_DATA_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def data_env_name(key: str) -> str:
    """The environment variable a subject's data key reaches steps as: FREQ_DATA_<KEY>
    (other characters become `_`, for data written before keys had to be identifiers)."""
    return "FREQ_DATA_" + "".join(c if c.isalnum() else "_" for c in key).upper()


def data_problem(keys: Iterable[str]) -> str | None:
    """Why these data keys cannot be one subject's data, or None: each must be an
    identifier, and no two may give the same FREQ_DATA_ variable (`lower` and `LOWER`)."""
    seen: dict[str, str] = {}
    for key in keys:
        if not _DATA_KEY_RE.match(key):
            return (
                f"data key {key!r} is not an identifier (letters, digits and _, "
                "not starting with a digit)"
            )
        env = data_env_name(key)
        other = seen.setdefault(env, key)
        if other != key:
            return f"data keys {other!r} and {key!r} would both be {env}; keep one"
    return None


# ---------------------------------------------------------------- configuration


class Isolation(Enum):
    """Where a step runs."""

    NONE = "none"
    WORKTREE = "worktree"


class FailureMode(Enum):
    """How a step's failures are classified (`failure:`)."""

    RETRYABLE = "retryable"
    TERMINAL = "terminal"
    INFER = "infer"


class FailureKind(Enum):
    """The class a failure is given (SPEC §5)."""

    RETRYABLE = "retryable"
    TERMINAL = "terminal"
    QUOTA = "quota"
    NEEDS_HUMAN = "needs_human"


class Autonomy(Enum):
    """How much a factory does by itself."""

    AUTO = "auto"
    SUPERVISED = "supervised"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Exponential backoff between attempts (Temporal's initial_interval etc.)."""

    initial: timedelta = timedelta(seconds=15)
    factor: float = 2.0
    max: timedelta = timedelta(seconds=90)
    jitter: float = 0.2


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how soon a failed step is tried again."""

    max_attempts: int = 3
    backoff: Backoff = field(default_factory=Backoff)


@dataclass(frozen=True, slots=True, kw_only=True)
class ClassifyRule:
    """`classify:` rule: a regex on the output tail and/or an exit code → a class."""

    match: str | None = None
    exit: int | None = None
    kind: FailureKind


@dataclass(frozen=True, slots=True, kw_only=True)
class LockSpec:
    """A named resource lock a step holds while it runs."""

    name: str
    ttl: timedelta | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Batch:
    """`batch:` one run for many subjects."""

    min: int = 1
    max: int = 10
    max_wait: timedelta = timedelta(minutes=30)


@dataclass(frozen=True, slots=True, kw_only=True)
class Emits:
    """`emits:` where `freq:subject NAME` lines create subjects."""

    factory_id: str
    state: str


class MergeStrategy(Enum):
    """How a worktree step's branch lands on its target (`merge.strategy`)."""

    MERGE = "merge"
    REBASE = "rebase"
    SQUASH = "squash"


class OnConflict(Enum):
    """What a landing that conflicts does (`merge.on_conflict`)."""

    RETRY = "retry"
    TERMINAL = "terminal"
    AGENT = "agent"


@dataclass(frozen=True, slots=True, kw_only=True)
class Merge:
    """`merge:` how a worktree step's branch lands on its target, through that branch's
    merge queue. `into` None: the repository's default branch (the remote's HEAD branch,
    else `init.defaultBranch`, else `main` or `master`, whichever exists)."""

    into: str | None = None
    strategy: MergeStrategy = MergeStrategy.REBASE
    on_conflict: OnConflict = OnConflict.RETRY
    check: str | tuple[str, ...] | None = None  # run on the combined tree before landing
    batch: int = 1  # entries checked together on the tip (bisected on failure)


@dataclass(frozen=True, slots=True, kw_only=True)
class Setup:
    """`setup:` prepares a worktree before its step runs: `run` in the worktree, only when
    the files matching `when_changed` differ from what it last set up (every time when
    empty); `clean` also removes ignored files (installed dependencies, caches) on reuse."""

    run: str | tuple[str, ...] | None = None
    when_changed: tuple[str, ...] = ()
    clean: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Worktrees:
    """`worktrees:` in frequency.yaml: the pool of worktrees steps run in."""

    max: int = 8
    dir: str | None = None  # default: layout.default_pool_dir, outside the repository


class Window(Enum):
    """The period a budget counts spend over (calendar, in UTC)."""

    HOUR = "hour"
    DAY = "day"
    WEEK = "week"  # from Monday 00:00 UTC
    MONTH = "month"


@dataclass(frozen=True, slots=True, kw_only=True)
class Budget:
    """`budget: {usd: 20, per: day}`: the most a factory or an agent may spend a window."""

    usd: float
    per: Window = Window.DAY


@dataclass(frozen=True, slots=True, kw_only=True)
class Price:
    """USD per million tokens of one model (`prices:`), for CLIs that report no cost."""

    input: float
    output: float
    cached: float | None = None  # cached input; None: priced as input


class RespondAs(Enum):
    """What a `respond:` rule without `send` makes of the prompt it matched."""

    NEEDS_HUMAN = "needs_human"
    TERMINAL = "terminal"


@dataclass(frozen=True, slots=True, kw_only=True)
class Respond:
    """`respond: [{expect: REGEX, send: TEXT} | {expect: REGEX, as: ...}]` under `tty: true`."""

    expect: str
    send: str | None = None
    as_: RespondAs | None = None


DEFAULT_STALL = timedelta(minutes=5)

# The built-in agent adapters and the settings keys each has of its own (beside the keys
# every agent has: freq.build.AGENT_COMMON); freq/agents/ implements each of them.
ADAPTER_OPTIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "claude": frozenset(("permission_mode", "max_turns", "allowed_tools")),
        "codex": frozenset(("sandbox", "reasoning_effort")),
        "gemini": frozenset(("approval_mode",)),
        "command": frozenset(("prompt_via",)),
    }
)
ADAPTER_ALIASES: Mapping[str, str] = MappingProxyType({"claude_code": "claude"})
# adapters whose CLI keeps a session a retry can continue (`agent: {resume: true}`)
RESUMABLE = frozenset(("claude", "codex", "gemini"))


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDef:
    """An agent as a step runs it: a built-in adapter, or a named agent of frequency.yaml
    (`agents: {reviewer: {use: codex, ...}}`), with the step's own overrides applied."""

    name: str  # what steps say in `use:` (a named agent, or the adapter's own name)
    use: str  # the adapter: claude, codex, gemini or command
    model: str | None = None
    args: tuple[str, ...] = ()  # extra arguments (command: the program and its arguments)
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    bin: str | None = None  # the executable, when not the adapter's default program
    options: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))
    prices: Mapping[str, Price] = field(default_factory=lambda: MappingProxyType({}))
    budget: Budget | None = None
    tty: bool = False
    respond: tuple[Respond, ...] = ()
    stall_timeout: timedelta | None = None
    line: int | None = None

    def __repr__(self) -> str:
        # env values may be keys and tokens: never shown (STYLE.md habit 10)
        return f"AgentDef(name={self.name!r}, use={self.use!r}, model={self.model!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentCall:
    """`agent:` which agent a step uses and how."""

    use: str
    prompt: str = ""
    prompt_file: str | None = None  # relative to the repository root
    model: str | None = None
    args: tuple[str, ...] = ()
    resume: bool = False  # a retry continues the previous attempt's session
    tty: bool | None = None  # None: as the agent says
    respond: tuple[Respond, ...] = ()
    stall_timeout: timedelta | None = None


# ---------------------------------------------------------------- prompt templates

TEMPLATE_FIELDS = ("subject", "factory_id", "step", "attempt", "last_error", "diagnosis")
_TEMPLATE_DATA = re.compile(r"^data\.[A-Za-z_][A-Za-z0-9_]*$")


def _template_parts(template: str) -> list[tuple[str, str | None]]:
    """(literal text, field name or None) pairs; ValueError for a malformed template or a
    field that is not a bare name (no attribute, index, conversion or format spec)."""
    parts = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        if name is not None and (spec or conversion):
            raise ValueError(f"{{{name}}} may not have a conversion or format spec")
        if name is not None and name not in TEMPLATE_FIELDS and not _TEMPLATE_DATA.match(name):
            known = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
            raise ValueError(f"unknown field {{{name}}} (use {known} or {{data.KEY}})")
        parts.append((literal, name))
    return parts


def template_problem(template: str) -> str | None:
    """Why a prompt template cannot be rendered, or None (`{{` and `}}` are braces)."""
    try:
        _template_parts(template)
    except ValueError as exc:
        return f"prompt template: {exc}"
    return None


def render_template(template: str, values: Mapping[str, str], data: Mapping[str, str]) -> str:
    """The prompt: each `{field}` replaced by its value, `{data.KEY}` by the subject's data
    (empty when the subject has no such key). Nothing is evaluated (STYLE.md habit 8)."""
    out = []
    for literal, name in _template_parts(template):
        out.append(literal)
        if name is not None:
            out.append(data.get(name[5:], "") if name.startswith("data.") else values.get(name, ""))
    return "".join(out)


def resolve_agent(call: AgentCall, agents: Mapping[str, AgentDef]) -> AgentDef:
    """The agent a step's `agent:` runs: the named agent (or the built-in adapter) `use`
    names, with the step's model, arguments and terminal settings on top."""
    base = agents.get(call.use)
    if base is None:
        base = AgentDef(name=call.use, use=ADAPTER_ALIASES.get(call.use, call.use))
    return replace(
        base,
        model=call.model or base.model,
        args=base.args + call.args,
        tty=base.tty if call.tty is None else call.tty,
        respond=call.respond or base.respond,
        stall_timeout=call.stall_timeout or base.stall_timeout,
    )


# Predicates (SPEC §4): a closed vocabulary of data, evaluated by freq.predicates.


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectState:
    """Another factory's subject is (or is not) in one of the states."""

    factory_id: str
    subject: str = "{subject}"
    states: tuple[str, ...] = ()
    not_states: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Capacity:
    """Fewer than `below` subjects of a factory sit in the states."""

    factory_id: str
    states: tuple[str, ...]
    below: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Changed:
    """Files under the paths changed on a branch since the step last succeeded."""

    paths: tuple[str, ...]
    since: str = "last_success"
    branch: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """An environment check: holds when the command exits 0."""

    run: str
    timeout: timedelta = timedelta(seconds=10)


@dataclass(frozen=True, slots=True, kw_only=True)
class AllOf:
    """Every predicate holds."""

    items: tuple[Predicate, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AnyOf:
    """At least one predicate holds."""

    items: tuple[Predicate, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Not:
    """The predicate does not hold."""

    item: Predicate


Predicate = SubjectState | Capacity | Changed | Command | AllOf | AnyOf | Not


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One step of a factory: moves a subject from one of `from_states` to `to_state`."""

    id: str
    from_states: tuple[str, ...]
    to_state: str
    run: str | tuple[str, ...] | None = None
    agent: AgentCall | None = None
    isolation: Isolation = Isolation.NONE
    setup: Setup | None = None
    merge: Merge | None = None
    touches: tuple[str, ...] = ()  # path globs the step edits (`{subject}`, `{data.KEY}`)
    timeout: timedelta | None = None
    max_parallel: int | None = None
    locks: tuple[LockSpec, ...] = ()
    requires: tuple[Predicate, ...] = ()
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    failure: FailureMode = FailureMode.INFER
    classify: tuple[ClassifyRule, ...] = ()
    on_terminal: str | None = None
    outcomes: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    batch: Batch | None = None
    approval: bool = False
    emits: Emits | None = None
    verify: str | tuple[str, ...] | None = None  # run after a successful agent run
    line: int | None = None

    @property
    def is_gate(self) -> bool:
        """A step with neither `run` nor `agent`: it waits for a person's approval."""
        return self.run is None and self.agent is None

    @property
    def in_worktree(self) -> bool:
        """The step runs in a worktree of its own and lands through the merge queue."""
        return self.isolation is Isolation.WORKTREE and not self.is_gate


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """`limits:` of a factory."""

    max_parallel: int | None = None
    wip: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    budget: Budget | None = None  # spend of the factory's agent steps per window


@dataclass(frozen=True, slots=True, kw_only=True)
class Discover:
    """One `subjects.discover` source: a glob or a command."""

    glob: str | None = None
    command: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Factory:
    """A factory: a state machine that subjects move through."""

    factory_id: str
    path: str
    initial: str
    terminal: tuple[str, ...]
    steps: tuple[Step, ...]
    description: str = ""
    discover: tuple[Discover, ...] = ()
    limits: Limits = field(default_factory=Limits)
    poll_interval: timedelta = timedelta(seconds=30)
    autonomy: Autonomy = Autonomy.AUTO

    @property
    def states(self) -> tuple[str, ...]:
        """Every state, in order of first mention (initial first)."""
        seen: dict[str, None] = {self.initial: None}
        for step in self.steps:
            for s in (*step.from_states, step.to_state, *step.outcomes.values()):
                seen.setdefault(s, None)
            if step.on_terminal:
                seen.setdefault(step.on_terminal, None)
        for s in self.terminal:
            seen.setdefault(s, None)
        return tuple(seen)

    def step(self, step_id: str) -> Step | None:
        """The step with this id, or None."""
        for s in self.steps:
            if s.id == step_id:
                return s
        return None

    def steps_from(self, state: str) -> tuple[Step, ...]:
        """Steps that start from `state`, in declaration order (remembered per factory:
        the planner asks once per subject)."""
        held = _STEPS_FROM.get(id(self.steps))
        if held is None or held[0] is not self.steps:
            if len(_STEPS_FROM) > 256:
                _STEPS_FROM.clear()
            held = _STEPS_FROM[id(self.steps)] = (self.steps, {})
        got = held[1].get(state)
        if got is None:
            got = held[1][state] = tuple(s for s in self.steps if state in s.from_states)
        return got


# id of a factory's steps → (those steps, state → the steps from it): the tuple is held,
# so its id is never another's while the entry lives
_STEPS_FROM: dict[int, tuple[tuple[Step, ...], dict[str, tuple[Step, ...]]]] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """`.frequency/frequency.yaml`: global settings."""

    max_parallel: int = 4
    lease_ttl: timedelta = timedelta(seconds=60)
    lock_ttl: timedelta = timedelta(minutes=10)
    archive_after: timedelta | None = None  # None: not set (freq.archival's default, 1d)
    default_timeout: timedelta | None = None
    default_retry: RetryPolicy = field(default_factory=RetryPolicy)
    default_failure: FailureMode = FailureMode.INFER
    remote: str | None = None
    agents: Mapping[str, AgentDef] = field(default_factory=lambda: MappingProxyType({}))
    worktrees: Worktrees = field(default_factory=Worktrees)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Every factory of a repository, validated, plus global settings."""

    root: str
    settings: Settings = field(default_factory=Settings)
    factories: tuple[Factory, ...] = ()

    def factory(self, factory_id: str) -> Factory | None:
        """The factory with this id, or None."""
        for f in self.factories:
            if f.factory_id == factory_id:
                return f
        return None

    def step(self, factory_id: str, step_id: str) -> Step | None:
        """Step `step_id` of factory `factory_id`, or None when either is not configured."""
        fac = self.factory(factory_id)
        return fac.step(step_id) if fac is not None else None
