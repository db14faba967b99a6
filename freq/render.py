"""Pure renderers: result values → text, JSON-ready dicts, mermaid and dot.

Imports only the standard library and freq's pure modules: no click, no I/O. freq/cli/ prints
what these return; the dashboard will serve the same dicts. A little above STYLE's ~500
lines: one renderer per command, sharing `table` and the time formats; split it by command
group when the next ones arrive.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from freq import refs
from freq.errors import FreqError, Hint
from freq.model import Capacity, Factory, SubjectState, format_duration
from freq.predicates import leaves
from freq.runtime import Subject

# ---------------------------------------------------------------- JSON


def jsonable(value: Any) -> Any:
    """Dataclasses, enums, datetimes, mappings and tuples → plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return refs.iso(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if hasattr(value, "total_seconds"):
        return value.total_seconds()
    return value


# ---------------------------------------------------------------- tables


def table(rows: list[list[str]], header: list[str]) -> str:
    """A left-aligned text table."""
    widths = [len(h) for h in header]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header).rstrip()]
    lines += [fmt.format(*row).rstrip() for row in rows]
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    """`1 subject`, `2 subjects`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def status_text(result: Any) -> str:
    """`status`: one block per factory, counts per state (terminal states marked)."""
    blocks = []
    for fs in result.factories:
        waiting = max(getattr(fs, "dlq_waiting", 0), fs.parked)
        extra = "".join(
            (
                f", {waiting} waiting in the dead-letter queue" if waiting else "",
                ", PAUSED" if fs.paused else "",
                f", autonomy {fs.autonomy}" if fs.autonomy != "auto" else "",
            )
        )
        parts = [f"{fs.factory}: {_count(fs.subjects, 'subject')}, {fs.running} running{extra}"]
        if getattr(fs, "description", ""):
            parts.append(f"  {fs.description}")
        rows = [
            [state, str(n), "terminal" if state in fs.terminal else ""] for state, n in fs.states
        ]
        parts.append(table(rows, ["state", "count", ""]))
        blocks.append("\n".join(parts))
    for orphan in getattr(result, "orphans", ()):
        running = f", {orphan.running} running" if orphan.running else ""
        head = (
            f"{orphan.factory}: {_count(orphan.subjects, 'subject')}{running}, orphaned "
            "(factory no longer configured)"
        )
        rows = [[state, str(n)] for state, n in orphan.states]
        blocks.append(head + "\n" + table(rows, ["state", "count"]))
    if result.locks_held:
        blocks.append("locks held: " + ", ".join(result.locks_held))
    for name, until in getattr(result, "quotas", ()):
        blocks.append(f"usage limit: {name} held until {until} (no attempt is spent waiting)")
    for q in getattr(result, "queues", ()):
        first = q.entries[0]
        head = (
            f"merge queue {q.target}: {len(q.entries)} "
            f"{'branch' if len(q.entries) == 1 else 'branches'} waiting, next "
            f"{first.factory}/{first.subject} {first.step}"
        )
        blocks.append(head + (f"\n  waiting: {q.waiting}" if q.waiting else ""))
    pool = getattr(result, "worktrees", None)
    if pool is not None:
        blocks.append(
            f"worktrees: {pool.in_use} of {len(pool.slots)} in use (max {pool.max}), "
            f"{size(pool.bytes)} on disk in {pool.dir}"
        )
    return "\n\n".join(blocks) if blocks else "no factories configured"


def size(n: int) -> str:
    """A byte count for people: `512 B`, `3.4 MB`."""
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def _lock_state(r: Any) -> str:
    if r.problem:
        return "unreadable"
    if r.held:
        return "held"
    why = getattr(r, "why", "")
    return "free" if why in ("", "released") else f"stale: {why}"


def locks_text(rows: Any) -> str:
    """`locks`: one line per lock, with holder, subject, age, expiry and whether held (or
    free, or stale and why: `stale: its claim ended: worker lost`)."""
    return table(
        [
            [
                r.name,
                r.holder,
                r.problem or r.subject,
                f"{r.age_seconds:.0f}s",
                r.expires_at,
                _lock_state(r),
            ]
            for r in rows
        ],
        ["lock", "holder", "subject", "age", "expires", ""],
    )


def dlq_list_text(rows: Any) -> str:
    """`dlq list`: one line per entry, newest first."""
    return table(
        [
            [
                r.id,
                r.commit[:10],
                f"{r.factory}/{r.subject}",
                f"{r.step} #{r.attempt}",
                r.failure_class,
                r.reason[:60],
                r.requeued_as or "",
            ]
            for r in rows
        ],
        ["id", "commit", "subject", "step", "class", "reason", "requeued as"],
    )


def show_text(res: Any) -> str:
    """`show`: the subject's key facts, its output tail and its history (renewals folded)."""
    lines = subject_text(res.subject, res.tip)
    if getattr(res, "archived", False):
        lines.insert(2, f"  archived: in refs/frequency/archive/{res.subject.factory}")
    for ref in getattr(res, "salvage", ()):
        lines.append(f"  salvaged: {ref} (uncommitted work of a stopped attempt's worktree)")
    if res.output_tail.strip():
        lines += ["  output (tail):"] + [f"    {ln}" for ln in res.output_tail.splitlines()[-10:]]
    lines += ["  history:"] + [f"    {ln}" for ln in history_lines(res.history)]
    return "\n".join(lines)


def why_text(res: Any) -> str:
    """`why`: every reason the subject is not moving."""
    return "\n".join(
        [f"{res.factory}/{res.subject} [{res.state}]:"] + [f"  - {r}" for r in res.reasons]
    )


def subject_text(subj: Subject, tip: str) -> list[str]:
    """Key facts of one subject."""
    lines = [
        f"{subj.factory}/{subj.name}",
        f"  state:    {subj.state} (since {refs.iso(subj.entered_at)})",
        f"  commit:   {tip[:12]}",
        f"  epoch:    {subj.epoch}",
        f"  attempt:  {subj.attempt}",
    ]
    if subj.data:
        lines.append("  data:     " + ", ".join(f"{k}={v}" for k, v in sorted(subj.data.items())))
    if subj.claim:
        c = subj.claim
        lines.append(
            f"  running:  {c.step} attempt {c.attempt} on {c.holder}, lease until "
            f"{refs.iso(c.expires_at)}"
        )
    if subj.landing:
        x = subj.landing
        lines.append(
            f"  queued:   {x.step} attempt {x.attempt} to land on {x.target} from {x.branch} "
            f"({x.commit[:12]}) since {refs.iso(x.queued_at)}; then {x.to_state}"
        )
    if subj.not_before:
        lines.append(f"  backoff:  until {refs.iso(subj.not_before)}")
    if subj.last_error:
        e = subj.last_error
        lines.append(
            f"  last error: {e.step} attempt {e.attempt}: {e.reason} ({e.kind.value})"
            + (f": {e.summary}" if e.summary else "")
        )
        if e.conflict:
            lines.append("  conflict: " + ", ".join(e.conflict))
    return lines


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryItem:
    """One line of history as a person reads it: a commit, or a run of lease renewals of
    one attempt folded into one (`entries` newest first, as the commits are)."""

    entries: tuple[Any, ...]

    @property
    def newest(self) -> Any:
        """The latest commit of the item."""
        return self.entries[0]

    @property
    def folded(self) -> bool:
        """More than one renewal in this item."""
        return len(self.entries) > 1


def fold_history(entries: Iterable[Any]) -> list[HistoryItem]:
    """Fold each run of lease renewals of one attempt (consecutive in that ref's history,
    whatever other refs' commits fall between) into one item, placed where its newest
    renewal is. `entries` are HistoryEntry values, newest first. The CLI's `show` and `log`
    and the dashboard read history through this; `--json` keeps every commit."""
    items: list[list[Any]] = []
    open_run: dict[tuple[str, str, str], list[Any]] = {}
    for e in entries:
        t = e.trailers
        if not e.renewal:
            for key in [k for k in open_run if k[0] == e.ref]:
                del open_run[key]  # any other commit of that ref ends its run
            items.append([e])
            continue
        key = (e.ref, t.get("Freq-Step", ""), t.get("Freq-Attempt", ""))
        for other in [k for k in open_run if k[0] == e.ref and k != key]:
            del open_run[other]
        run = open_run.get(key)
        if run is None:
            run = open_run[key] = []
            items.append(run)
        run.append(e)
    return [HistoryItem(entries=tuple(x)) for x in items]


def _clock(t: datetime) -> str:
    return t.strftime("%H:%M:%SZ") if t.tzinfo else t.strftime("%H:%M:%S")


def history_lines(entries: Any, *, with_ref: bool = False) -> list[str]:
    """`log` and `show`: one line per commit, newest first, with each run of lease renewals
    of one attempt folded into one line (see fold_history)."""
    out = []
    for item in fold_history(entries):
        e = item.newest
        first = e.message.splitlines()[0] if e.message else ""
        if item.folded:
            oldest = item.entries[-1]
            t = e.trailers
            who = f"{t.get('Freq-Factory', '')}/{t.get('Freq-Subject', '')}"
            first = (
                f"{who}: {t.get('Freq-Step', '')} lease renewed {len(item.entries)} times "
                f"(attempt {t.get('Freq-Attempt', '?')}, first {_clock(oldest.at)}, "
                f"last {_clock(e.at)})"
            )
        out.append(f"{e.oid[:12]} {refs.iso(e.at)} {first}")
    return out


def dlq_show_text(res: Any) -> str:
    """`dlq show`: a failure with its class, reason and output tail; or a requeue record,
    saying which entry it requeued, by whom and why."""
    e = res.entry
    if e.kind == "requeue":
        return "\n".join(
            [
                f"{e.id} ({e.commit[:12]})  requeue record of {e.requeues} by {res.by}",
                f"  subject:  {e.factory}/{e.subject}",
                f"  reason:   {e.reason or '(none given)'}",
                f"  at:       {e.at}",
                f"  failure:  `git freq dlq show {e.requeues}`",
            ]
        )
    if e.kind == "diagnosis":
        return "\n".join(
            [
                f"{e.id} ({e.commit[:12]})  diagnosis of {res.diagnoses} by {res.agent}",
                f"  subject:  {e.factory}/{e.subject}",
                f"  at:       {e.at}",
                f"  fix:      `git freq dlq fix {res.diagnoses}` requeues with it",
                "  root cause:",
                *(f"    {ln}" for ln in res.output_tail.splitlines()),
            ]
        )
    lines = [f"{e.id} ({e.commit[:12]})  {e.factory}/{e.subject}"]
    if res.question:
        lines.append(f"  question: {res.question}")
    lines += [
        f"  step:     {e.step}, attempt {e.attempt}, failed in {res.state}",
        f"  class:    {e.failure_class} ({e.reason})",
        *([f"  conflict: {', '.join(e.conflict)}"] if e.conflict else []),
        *(f"  salvaged: {ref}" for ref in e.salvage),
        f"  exit:     {res.exit_code}" + (f", {res.duration_ms} ms" if res.duration_ms else ""),
        f"  subject:  {res.subject_commit[:12]}",
        f"  at:       {e.at}",
    ]
    lines.append(
        f"  status:   requeued as {e.requeued_as}"
        if e.requeued_as
        else f"  status:   waiting (`git freq dlq requeue {e.id}`)"
    )
    if res.diagnosis:
        lines.append(f"  diagnosis ({res.diagnosis_entry}; `git freq dlq fix {e.id}`):")
        lines += [f"    {ln}" for ln in res.diagnosis.splitlines()[:20]]
    if res.output_tail.strip():
        lines += ["  output (tail):"] + [f"    {ln}" for ln in res.output_tail.splitlines()[-20:]]
    return "\n".join(lines)


def plan_text(p: Any) -> str:
    """`plan`: per factory, what would start, and each waiting subject with its reasons."""
    factories: dict[str, list[str]] = {}

    def add(factory: str, line: str) -> None:
        factories.setdefault(factory, []).append(line)

    for s in p.starts:
        members = f" with {len(s.batch) - 1} more (batch)" if len(s.batch) > 1 else ""
        add(s.factory, f"  start  {s.subject}: {s.step} (attempt {s.attempt}){members}")
    for e in p.expired:
        add(
            e.factory,
            f"  lost   {e.subject}: {e.step} attempt {e.attempt} on {e.holder} (lease expired)",
        )
    for k in (*p.parks, *p.emits):
        add(k.factory, f"  repair {k.subject}: {type(k).__name__.lower()}")
    done: dict[str, int] = {}
    for w in p.waiting:
        if w.kind == "terminal":
            done[w.factory] = done.get(w.factory, 0) + 1
        else:
            add(w.factory, f"  wait   {w.subject} [{w.state}]: {'; '.join(w.reasons)}")
    lines = []
    for factory in sorted(set(factories) | set(done)):
        n = done.get(factory, 0)
        lines.append(f"{factory}:" + (f" ({n} in a terminal state)" if n else ""))
        lines += factories.get(factory, [])
    lines += [f"warning: {prob}" for prob in p.problems]
    return "\n".join(lines) if lines else "nothing to do: no subjects"


# ---------------------------------------------------------------- costs


def _usd(x: float) -> str:
    return f"${x:,.2f}" if x >= 1 or x == 0 else f"${x:.4f}"


def _money(t: Any) -> str:
    """A Total's USD: `-` when it had no agent attempt, `~` before it when part is an
    estimate, `+?` after it when some agent attempt recorded no cost (`?`: none did)."""
    if not t.agent_attempts:
        return "-"
    if t.unpriced == t.agent_attempts:
        return "?"
    return ("~" if t.estimated_usd else "") + _usd(t.usd) + ("+?" if t.unpriced else "")


def _share(share: float | None, what: str) -> str:
    return f"{share:.0%} of {what}" if share is not None else f"no {what} recorded"


def _z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def costs_text(res: Any) -> str:
    """`costs`: one row per group, the total, the agent/deterministic split, budgets."""
    if not res.total.attempts:
        lines = ["no attempts recorded" + (f" since {_z(res.since)}" if res.since else "")]
    else:
        rows = [
            [
                t.group,
                str(t.attempts),
                str(t.agent_attempts),
                *((f"{n:,}" if t.agent_attempts else "-") for n in (
                    t.tokens_in, t.tokens_out, t.tokens_cached
                )),
                _money(t),
                format_duration(timedelta(milliseconds=t.duration_ms)),
            ]
            for t in res.groups
        ]  # fmt: skip
        head = [res.by.value, "attempts", "agent", "tokens in", "out", "cached", "usd", "time"]
        t, sp = res.total, res.split
        notes = [f"{t.failed} failed"] if t.failed else []
        if t.estimated_usd:
            notes.append(f"~{_usd(t.estimated_usd)} estimated from prices")
        if t.unpriced:
            notes.append(f"{_count(t.unpriced, 'agent attempt')} with no cost recorded")
        wall = [
            format_duration(timedelta(milliseconds=ms))
            for ms in (sp.agent_duration_ms, sp.duration_ms)
        ]
        lines = [
            table(rows, head),
            "",
            f"total: {_count(t.attempts, 'attempt')}, {t.agent_attempts} by agents, "
            f"{_money(t)}" + (f" ({'; '.join(notes)})" if notes else ""),
            f"agent steps: {_share(sp.step_share, 'steps')}, {_share(sp.time_share, 'wall time')}"
            f" ({sp.agent_attempts} of {sp.attempts} attempts; {wall[0]} of {wall[1]})",
        ]
    for b in res.budgets:
        lines.append(
            f"budget of {b.scope} {b.name}: {_usd(b.spent)} spent of {_usd(b.usd)} this "
            f"{b.per.value}{' (reached)' if b.reached else ''}; resets {_z(b.resets)}"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- graphs


def _node(fid: str, state: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{fid}__{state}")


def _cross_edges(fac: Factory) -> list[tuple[str, str, str, str]]:
    """(from factory, from state, to node key, label) edges to other factories."""
    edges = []
    for step in fac.steps:
        for p in leaves(step.requires):
            if isinstance(p, SubjectState):
                edges += [(p.factory_id, st, step.id, "requires") for st in p.states or ("*",)]
            elif isinstance(p, Capacity):
                edges.append((p.factory_id, p.states[0], step.id, f"capacity < {p.below}"))
    return edges


@dataclass(frozen=True, slots=True)
class _Edge:
    """An edge between two factories' states: `requires` (dotted) or `emits` (bold)."""

    src: tuple[str, str]
    dst: tuple[str, str]
    label: str
    emits: bool


def _between(factories: tuple[Factory, ...]) -> list[_Edge]:
    """Every edge between states of different factories among `factories`."""
    ids = {f.factory_id for f in factories}
    out: list[_Edge] = []
    for fac in factories:
        for other, st, step_id, label in _cross_edges(fac):
            target = fac.step(step_id)
            if other not in ids or target is None:
                continue
            src = (other, st if st != "*" else _first(factories, other))
            out += [
                _Edge(src, (fac.factory_id, fr), f"{label} {step_id}", False)
                for fr in target.from_states
            ]
        for step in fac.steps:
            if step.emits and step.emits.factory_id in ids:
                src = (fac.factory_id, step.to_state)
                out.append(_Edge(src, (step.emits.factory_id, step.emits.state), "emits", True))
    return out


def graph_edges(
    factories: tuple[Factory, ...],
) -> list[tuple[tuple[str, str], tuple[str, str], str, bool]]:
    """The edges `graph` draws between factories, as data (the dashboard draws its own
    picture): (factory, state) to (factory, state), label, and whether it is an emit."""
    return [(e.src, e.dst, e.label, e.emits) for e in _between(factories)]


def _cluster(fac: Factory, states: tuple[str, ...], fmt: str, *, steps: bool) -> list[str]:
    """One factory's box: `states` as nodes, and (with `steps`) its steps as edges."""
    fid = fac.factory_id
    lines: list[str] = []
    if fmt == "mermaid":
        lines.append(f"  subgraph {fid}")
        for st in states:
            shape = f"(({st}))" if st in fac.terminal else f"([{st}])"
            lines.append(f"    {_node(fid, st)}{shape}")
        for step in fac.steps if steps else ():
            for fr in step.from_states:
                lines.append(f"    {_node(fid, fr)} -->|{step.id}| {_node(fid, step.to_state)}")
            for code, st in step.outcomes.items():
                for fr in step.from_states:
                    lines.append(
                        f"    {_node(fid, fr)} -.->|{step.id} exit {code}| {_node(fid, st)}"
                    )
        lines.append("  end")
        return lines
    lines.append(f'  subgraph "cluster_{fid}" {{')
    lines.append(f'    label="{fid}";')
    for st in states:
        shape = "doublecircle" if st in fac.terminal else "box"
        lines.append(f'    {_node(fid, st)} [label="{st}", shape={shape}];')
    for step in fac.steps if steps else ():
        for fr in step.from_states:
            lines.append(
                f'    {_node(fid, fr)} -> {_node(fid, step.to_state)} [label="{step.id}"];'
            )
        for code, st in step.outcomes.items():
            for fr in step.from_states:
                lines.append(
                    f"    {_node(fid, fr)} -> {_node(fid, st)} "
                    f'[label="{step.id} exit {code}", style=dashed];'
                )
    lines.append("  }")
    return lines


def graph(factories: tuple[Factory, ...], fmt: str, *, focus: str | None = None) -> str:
    """Every factory's states and steps, and the edges between factories (mermaid or dot).

    With `focus`, that factory is drawn whole, and of the others only the states on an
    edge into or out of it: what it waits on (requires), what it feeds (emits), and what
    waits on it or feeds it."""
    edges = _between(factories)
    if focus is not None:
        edges = [e for e in edges if focus in (e.src[0], e.dst[0])]
    involved: dict[str, set[str]] = {}
    for e in edges:
        for fid, st in (e.src, e.dst):
            involved.setdefault(fid, set()).add(st)
    lines: list[str] = (
        ["flowchart LR"] if fmt == "mermaid" else ["digraph frequency {", "  rankdir=LR;"]
    )
    for fac in factories:
        if focus is None or fac.factory_id == focus:
            lines += _cluster(fac, fac.states, fmt, steps=True)
        elif fac.factory_id in involved:
            states = tuple(st for st in fac.states if st in involved[fac.factory_id])
            lines += _cluster(fac, states, fmt, steps=False)
    for e in edges:
        src, dst = _node(*e.src), _node(*e.dst)
        if fmt == "mermaid":
            lines.append(
                f"  {src} == emits ==> {dst}" if e.emits else f"  {src} -. {e.label} .-> {dst}"
            )
        else:
            style = "bold" if e.emits else "dotted"
            lines.append(f'  {src} -> {dst} [label="{e.label}", style={style}];')
    if fmt != "mermaid":
        lines.append("}")
    return "\n".join(lines)


def _first(factories: tuple[Factory, ...], fid: str) -> str:
    for f in factories:
        if f.factory_id == fid:
            return f.initial
    return "unknown"


# ---------------------------------------------------------------- errors


def hint_text(hint: Hint) -> str:
    """A hint in the command line's words: its text, then the command (`see `git freq status
    build``) or the option (`overwrite them: pass --force`)."""
    if hint.command:
        return f"{hint.text} `git freq {' '.join(hint.command)}`"
    if hint.option:
        return f"{hint.text} --{hint.option.replace('_', '-')}"
    return hint.text


def error_line(error: FreqError) -> str:
    """A FreqError as the CLI prints it: the message with its hint folded in."""
    return f"{error.message}; {hint_text(error.hint)}" if error.hint else error.message
