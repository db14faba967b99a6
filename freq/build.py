"""Build model records from schema-valid configuration documents (the third stage of config).

Imports only the standard library and freq.model: no yaml, no jsonschema, no I/O. Its input
has passed the schema and `flow:` expansion in freq.config, so it does not check; every
default a field does not give comes from the model or from frequency.yaml's `defaults:`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from freq.model import (
    ADAPTER_ALIASES,
    AgentCall,
    AgentDef,
    AllOf,
    AnyOf,
    Autonomy,
    Backoff,
    Batch,
    Budget,
    Capacity,
    Changed,
    ClassifyRule,
    Command,
    Discover,
    Emits,
    Factory,
    FailureKind,
    FailureMode,
    Isolation,
    Limits,
    LockSpec,
    Merge,
    MergeStrategy,
    Not,
    OnConflict,
    Predicate,
    Price,
    Respond,
    RespondAs,
    RetryPolicy,
    Settings,
    Setup,
    Step,
    SubjectState,
    Window,
    Worktrees,
    parse_duration,
)

# keys every agent definition may have; the rest are its adapter's own (AgentDef.options)
AGENT_COMMON = frozenset(
    ("use", "model", "args", "env", "bin", "prices", "budget", "tty", "respond", "stall_timeout")
)


def _given(
    data: Mapping[str, Any], key: str, conv: Callable[[Any], Any], name: str = ""
) -> dict[str, Any]:
    """`{name: conv(data[key])}` when the key is present, else `{}` (the model's default holds)."""
    return {name or key: conv(data[key])} if key in data else {}


def _freeze(value: Any) -> Any:
    """Mappings → read-only mappings, lists → tuples, all the way down."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _retry(data: Mapping[str, Any] | None, base: RetryPolicy) -> RetryPolicy:
    """`base` overridden field by field (backoff too) by a `retry:` mapping."""
    if not data:
        return base
    b = data.get("backoff", {})
    backoff: Backoff = replace(
        base.backoff,
        **_given(b, "initial", parse_duration),
        **_given(b, "factor", float),
        **_given(b, "max", parse_duration),
        **_given(b, "jitter", float),
    )
    return replace(base, **_given(data, "max_attempts", int), backoff=backoff)


def build_settings(data: Mapping[str, Any] | None) -> Settings:
    """Settings from a schema-valid frequency.yaml (None: an empty file or no file)."""
    data = data or {}
    defaults = data.get("defaults", {})
    return Settings(
        **_given(data, "max_parallel", int),
        **_given(data.get("lease", {}), "ttl", parse_duration, "lease_ttl"),
        **_given(data.get("locks", {}), "ttl", parse_duration, "lock_ttl"),
        **_given(data, "archive_after", parse_duration),
        **_given(defaults, "timeout", parse_duration, "default_timeout"),
        default_retry=_retry(defaults.get("retry"), RetryPolicy()),
        **_given(defaults, "failure", FailureMode, "default_failure"),
        **_given(data, "remote", str),
        agents=MappingProxyType(
            {name: agent_def(name, body) for name, body in (data.get("agents") or {}).items()}
        ),
        worktrees=Worktrees(
            **_given(data.get("worktrees", {}), "max", int),
            **_given(data.get("worktrees", {}), "dir", str),
        ),
    )


def _budget(data: Mapping[str, Any]) -> Budget:
    return Budget(usd=float(data["usd"]), **_given(data, "per", Window))


def _respond(item: Mapping[str, Any]) -> Respond:
    return Respond(
        expect=item["expect"],
        **_given(item, "send", str),
        **_given(item, "as", RespondAs, "as_"),
    )


def agent_def(name: str, data: Mapping[str, Any]) -> AgentDef:
    """A named agent of frequency.yaml (`agents: {NAME: {use: ..., ...}}`)."""
    use = data["use"]
    return AgentDef(
        name=name,
        use=ADAPTER_ALIASES.get(use, use),
        **_given(data, "model", str),
        args=tuple(data.get("args", ())),
        env=MappingProxyType({str(k): str(v) for k, v in (data.get("env") or {}).items()}),
        **_given(data, "bin", str),
        options=_freeze({k: v for k, v in data.items() if k not in AGENT_COMMON}),
        prices=MappingProxyType(
            {
                str(m): Price(
                    input=float(p["input"]),
                    output=float(p["output"]),
                    **_given(p, "cached", float),
                )
                for m, p in (data.get("prices") or {}).items()
            }
        ),
        **_given(data, "budget", _budget),
        **_given(data, "tty", bool),
        respond=tuple(_respond(r) for r in data.get("respond", ())),
        **_given(data, "stall_timeout", parse_duration),
    )


def _kind(data: Mapping[str, Any]) -> tuple[str, Any]:
    """(kind, body) of a `requires:` item in either form; a combinator's body is its list or
    its one predicate, a leaf's body the mapping of its fields (`type` beside them is ignored).

    `{type: capacity, factory_id: f, ...}` (the design post's form) and
    `{capacity: {factory_id: f, ...}}` give the same pair.
    """
    if "type" not in data:
        ((kind, body),) = data.items()
        return kind, body
    kind = data["type"]
    if kind in ("all", "any"):
        return kind, data["predicates"]
    return kind, data["predicate"] if kind == "not" else data


def _predicate(data: Mapping[str, Any]) -> Predicate:
    """One schema-valid `requires:` item, in either form, → a predicate record."""
    kind, body = _kind(data)
    if kind in ("all", "any"):
        items = tuple(_predicate(p) for p in body)
        return AllOf(items=items) if kind == "all" else AnyOf(items=items)
    if kind == "not":
        return Not(item=_predicate(body))
    if kind == "subject_state":
        return SubjectState(
            factory_id=body["factory_id"],
            **_given(body, "subject", str),
            states=tuple(body.get("states", ())),
            not_states=tuple(body.get("not_states", ())),
        )
    if kind == "capacity":
        return Capacity(
            factory_id=body["factory_id"], states=tuple(body["states"]), below=body["below"]
        )
    if kind == "changed":
        return Changed(
            paths=tuple(body["paths"]), **_given(body, "since", str), **_given(body, "branch", str)
        )
    return Command(run=body["run"], **_given(body, "timeout", parse_duration))


def _lock(item: str | Mapping[str, Any]) -> LockSpec:
    if isinstance(item, str):
        return LockSpec(name=item)
    return LockSpec(name=item["name"], **_given(item, "ttl", parse_duration))


def _rule(item: Mapping[str, Any]) -> ClassifyRule:
    return ClassifyRule(
        match=item.get("match"), exit=item.get("exit"), kind=FailureKind(item["as"])
    )


def _agent(item: Mapping[str, Any]) -> AgentCall:
    return AgentCall(
        use=item["use"],
        **_given(item, "prompt", str),
        **_given(item, "prompt_file", str),
        **_given(item, "model", str),
        args=tuple(item.get("args", ())),
        **_given(item, "resume", bool),
        **_given(item, "tty", bool),
        respond=tuple(_respond(r) for r in item.get("respond", ())),
        **_given(item, "stall_timeout", parse_duration),
    )


def _command(value: Any) -> str | tuple[str, ...] | None:
    return tuple(value) if isinstance(value, list) else value


def _merge(item: Mapping[str, Any]) -> Merge:
    return Merge(
        **_given(item, "into", str),
        **_given(item, "strategy", MergeStrategy),
        **_given(item, "on_conflict", OnConflict),
        check=_command(item.get("check")),
        **_given(item, "batch", int),
    )


def _setup(value: Any) -> Setup:
    if not isinstance(value, dict):
        return Setup(run=_command(value))
    return Setup(
        run=_command(value.get("run")),
        when_changed=tuple(value.get("when_changed", ())),
        clean=bool(value.get("clean", False)),
    )


def _step(data: Mapping[str, Any], settings: Settings, line: int) -> Step:
    """One list-form step; retry/timeout/failure fall back to frequency.yaml `defaults:`."""
    agent = _agent(data["agent"]) if "agent" in data else None
    run = data.get("run")
    # agent steps change code: each runs in a worktree of its own (SPEC §2)
    isolation = Isolation(data.get("isolation", "worktree" if agent is not None else "none"))
    merge = data.get("merge")
    if merge is None and isolation is Isolation.WORKTREE:
        merge = {}  # a worktree step always lands through the queue
    return Step(
        id=data["id"],
        from_states=tuple(data["from_states"]),
        to_state=data["to_state"],
        run=tuple(run) if isinstance(run, list) else run,
        agent=agent,
        isolation=isolation,
        setup=_setup(data["setup"]) if "setup" in data else None,
        merge=_merge(merge) if merge is not None else None,
        touches=tuple(data.get("touches", ())),
        timeout=parse_duration(data["timeout"]) if "timeout" in data else settings.default_timeout,
        max_parallel=data.get("max_parallel"),
        locks=tuple(_lock(x) for x in data.get("locks", ())),
        requires=tuple(_predicate(p) for p in data.get("requires", ())),
        retry=_retry(data.get("retry"), settings.default_retry),
        failure=FailureMode(data.get("failure", settings.default_failure.value)),
        classify=tuple(_rule(r) for r in data.get("classify", ())),
        on_terminal=data.get("on_terminal"),
        outcomes=MappingProxyType({int(k): v for k, v in data.get("outcomes", {}).items()}),
        batch=Batch(**{**data["batch"], **_given(data["batch"], "max_wait", parse_duration)})
        if "batch" in data
        else None,
        approval=data.get("approval", False),
        emits=Emits(**data["emits"]) if "emits" in data else None,
        verify=tuple(data["verify"])
        if isinstance(data.get("verify"), list)
        else data.get("verify"),
        line=line,
    )


def build_factory(
    data: Mapping[str, Any], *, path: str, step_lines: Sequence[int], settings: Settings
) -> Factory:
    """A Factory from a schema-valid, flow-expanded factory document.

    `path` is its file, `step_lines` the line of each step (for messages about steps).
    """
    limits = data.get("limits", {})
    return Factory(
        factory_id=data["factory_id"],
        path=path,
        initial=data["state"]["initial"],
        terminal=tuple(data["state"]["terminal"]),
        steps=tuple(
            _step(s, settings, line) for s, line in zip(data["steps"], step_lines, strict=True)
        ),
        description=data.get("description", ""),
        discover=tuple(Discover(**d) for d in data.get("subjects", {}).get("discover", ())),
        limits=Limits(
            **_given(limits, "max_parallel", int),
            **_given(limits, "wip", lambda w: MappingProxyType(dict(w))),
            **_given(limits, "budget", _budget),
        ),
        **_given(data, "poll_interval", parse_duration),
        **_given(data, "autonomy", Autonomy),
    )
