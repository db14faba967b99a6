"""The dashboard's JSON: what ops returns, as the plain values the page and scripts read.

Must not import click, dulwich, subprocess or pexpect, nor starlette (this module is the
API's content, `app` its transport). Every read goes through the ops functions the CLI
calls (status, plan_now, show, log, why, dlq_list, dlq_show, costs_report, list_locks,
graph_input, queue_status); the only read of its own is an attempt's log file, which
the Store names (`log_path`) and which no CLI command prints yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from freq import __version__, ops, refs, render
from freq.errors import FreqError
from freq.model import Factory, Step
from freq.runtime import Subject

LOG_TAIL = 64 * 1024  # bytes of an attempt's log the subject page shows (its end)
SHOWN_KINDS = frozenset(
    # the planner's wait kinds the board turns into badges (the rest are plain states)
    {
        "backoff",
        "approval",
        "gate",
        "quota",
        "queued",
        "dlq",
        "exhausted",
        "blocked",
        "lock",
        "cap",
        "wip",
        "predicate",
        "budget",
        "lane",
        "paused",
        "batch",
    }
)


def jsonable(value: Any) -> Any:
    """An ops result as JSON values (the CLI's --json does the same)."""
    return render.jsonable(value)


def _iso(t: datetime | None) -> str | None:
    return refs.iso(t) if t is not None else None


def _step_agent(fac: Factory | None, step_id: str) -> tuple[str | None, str | None]:
    step = fac.step(step_id) if fac is not None else None
    if step is None or step.agent is None:
        return None, None
    return step.agent.use, step.agent.model


def _step_json(step: Step) -> dict[str, Any]:
    return {
        "id": step.id,
        "from_states": list(step.from_states),
        "to_state": step.to_state,
        "agent": step.agent.use if step.agent is not None else None,
        "model": step.agent.model if step.agent is not None else None,
        "gate": step.is_gate,
    }


def _subject_row(
    subj: Subject,
    fac: Factory | None,
    now: datetime,
    waits: Mapping[tuple[str, str], tuple[str, str]],
    positions: Mapping[tuple[str, str], tuple[str, int]],
) -> dict[str, Any]:
    key = (subj.factory, subj.name)
    claim = None
    c = subj.claim
    if c is not None and c.expires_at > now:
        agent, model = _step_agent(fac, c.step)
        claim = {
            "step": c.step,
            "attempt": c.attempt,
            "holder": c.holder,
            "claimed_at": refs.iso(c.claimed_at),
            "expires_at": refs.iso(c.expires_at),
            "agent": agent,
            "model": model,
        }
    err = subj.last_error
    kind, reason = waits.get(key, ("", ""))
    landing = None
    if subj.landing is not None:
        target, pos = positions.get(key, (subj.landing.target, 0))
        landing = {"target": target, "position": pos, "branch": subj.landing.branch}
    return {
        "factory": subj.factory,
        "name": subj.name,
        "state": subj.state,
        "attempt": subj.attempt,
        "entered_at": refs.iso(subj.entered_at),
        "updated_at": refs.iso(subj.updated_at),
        "claim": claim,
        "not_before": _iso(subj.not_before),
        "parked": subj.parked,
        "error": (
            {"step": err.step, "kind": err.kind.value, "reason": err.reason, "final": err.final}
            if err is not None
            else None
        ),
        "landing": landing,
        "wait": {"kind": kind, "reason": reason} if kind in SHOWN_KINDS else None,
    }


def state(app: ops.App) -> dict[str, Any]:
    """GET /api/state: every factory with its counts and steps, every subject with what the
    board shows of it, the running steps, locks, quota holds, merge queues and budgets."""
    snap = app.store.snapshot()  # one read for the counts, the plan and the cards
    st = ops.status(app, snap=snap)
    p = ops.plan_now(app, snap=snap)
    now = app.clock.now()
    waits = {(w.factory, w.subject): (w.kind, w.reasons[0] if w.reasons else "") for w in p.waiting}
    positions = {
        (e.factory, e.subject): (q.target, e.position) for q in st.queues for e in q.entries
    }
    facs = {f.factory_id: f for f in app.config.factories}
    subjects = [
        _subject_row(s, facs.get(f), now, waits, positions)
        for (f, _), s in sorted(snap.subjects.items())
    ]
    budgets: list[dict[str, Any]] = []
    try:
        costs = ops.costs_report(app, by="factory")
        budgets = [jsonable(b) for b in costs.budgets]
    except FreqError as exc:  # spend unreadable: the board still shows
        budgets = [{"problem": str(exc)}]
    return {
        "version": __version__,
        "now": refs.iso(now),
        "root": str(app.root),
        "factories": [
            {
                **jsonable(fs),
                "states": [{"state": s, "count": n} for s, n in fs.states],
                "steps": [_step_json(s) for s in facs[fs.factory].steps],
                "initial": facs[fs.factory].initial,
            }
            for fs in st.factories
        ],
        "orphans": jsonable(st.orphans),
        "subjects": subjects,
        "running": [
            {"factory": s["factory"], "subject": s["name"], **s["claim"]}
            for s in subjects
            if s["claim"] is not None
        ],
        "locks": jsonable(ops.list_locks(app)),
        "caps": _caps(app, subjects),
        "quotas": [{"name": n, "until": u} for n, u in st.quotas],
        "queues": jsonable(st.queues),
        "worktrees": jsonable(st.worktrees),
        "budgets": budgets,
        "problems": list(st.problems) + list(p.problems),
    }


def _caps(app: ops.App, subjects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every configured cap with what runs under it now (the planner's own counts live in
    the cap slots; this is the board's view of the same claims)."""
    running: dict[tuple[str, ...], int] = {}
    for s in subjects:
        if s["claim"] is not None:
            for key in ((), (s["factory"],), (s["factory"], s["claim"]["step"])):
                running[key] = running.get(key, 0) + 1
    out = [
        {
            "cap": "max_parallel",
            "limit": app.config.settings.max_parallel,
            "used": running.get((), 0),
        }
    ]
    for fac in app.config.factories:
        fid = fac.factory_id
        if fac.limits.max_parallel is not None:
            out.append(
                {
                    "cap": f"{fid} max_parallel",
                    "limit": fac.limits.max_parallel,
                    "used": running.get((fid,), 0),
                }
            )
        for step in fac.steps:
            if step.max_parallel is not None:
                out.append(
                    {
                        "cap": f"{fid}.{step.id} max_parallel",
                        "limit": step.max_parallel,
                        "used": running.get((fid, step.id), 0),
                    }
                )
        for state, n in fac.limits.wip.items():
            count = sum(1 for s in subjects if s["factory"] == fid and s["state"] == state)
            out.append({"cap": f"{fid} wip {state}", "limit": n, "used": count})
    return out


def _log_tail(app: ops.App, subj: Subject, step: str, attempt: int, epoch: int) -> str | None:
    """The end of an attempt's log: empty when it printed nothing yet (the log is made by
    its first line), None when the file cannot be read."""
    path = app.store.log_path(subj.factory, subj.name, step, attempt, epoch)
    try:
        with path.open("rb") as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - LOG_TAIL))
            return f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    except OSError:
        return None


def subject(app: ops.App, factory: str, name: str) -> dict[str, Any]:
    """GET /api/subjects/{factory}/{subject}: the subject, its history (renewals folded),
    attempts with their log tails, cost and tokens, why it waits, its landing."""
    shown = ops.show(app, factory, name, history=200)
    subj = shown.subject
    history = []
    attempts: dict[tuple[str, int, int], dict[str, Any]] = {}
    for entry in shown.history:
        t = entry.trailers
        history.append(
            {
                "oid": entry.oid,
                "at": refs.iso(entry.at),
                "summary": entry.message.splitlines()[0] if entry.message else "",
                "message": entry.message,
                "renewal": entry.renewal,
                "trailers": t,
            }
        )
        step, attempt, epoch = t.get("Freq-Step"), t.get("Freq-Attempt"), t.get("Freq-Epoch")
        if step and attempt and attempt.isdigit() and epoch and epoch.isdigit():
            key = (step, int(attempt), int(epoch))
            row = attempts.setdefault(
                key, {"step": step, "attempt": int(attempt), "epoch": int(epoch), "events": []}
            )
            row["events"].append(t.get("Freq-Event", ""))
            for trailer, field in (
                ("Freq-Agent", "agent"),
                ("Freq-Model", "model"),
                ("Freq-Cost-Usd", "cost_usd"),
                ("Freq-Tokens-In", "tokens_in"),
                ("Freq-Tokens-Out", "tokens_out"),
                ("Freq-Exit", "exit_code"),
                ("Freq-Duration-Ms", "duration_ms"),
                ("Freq-Failure", "failure"),
            ):
                if trailer in t and field not in row:
                    row[field] = t[trailer]
    c = subj.claim
    if c is not None:
        attempts.setdefault(
            (c.step, c.attempt, c.epoch),
            {"step": c.step, "attempt": c.attempt, "epoch": c.epoch, "events": ["claim"]},
        )
    rows = sorted(attempts.values(), key=lambda r: (r["epoch"], r["attempt"]), reverse=True)
    running_key = (c.step, c.attempt, c.epoch) if c is not None else None
    for i, row in enumerate(rows):
        row["running"] = (row["step"], row["attempt"], row["epoch"]) == running_key
        # the newest few attempts carry their log; older ones are a click (reload) away
        row["log"] = (
            _log_tail(app, subj, row["step"], row["attempt"], row["epoch"]) if i < 5 else None
        )
    try:
        why: dict[str, Any] = jsonable(ops.why(app, factory, name))
    except FreqError as exc:
        why = {"kind": "unknown", "reasons": [str(exc)]}
    costs = ops.costs_report(app, by="subject")
    mine = [g for g in costs.groups if g.group == f"{factory}/{name}"]
    from freq.ops.queue import pool_status, queue_status  # the merge queue and the pool

    position = None
    if subj.landing is not None:
        for q in queue_status(app, app.store.snapshot(), target=subj.landing.target):
            for e in q.entries:
                if (e.factory, e.subject) == (factory, name):
                    position = {"target": q.target, "position": e.position, "waiting": q.waiting}
    pool = pool_status(app)
    slots = [
        jsonable(slot)
        for slot in (pool.slots if pool is not None else ())
        if slot.holder is not None and slot.holder.startswith(f"{factory}/{name} ")
    ]
    return {
        "subject": jsonable(subj),
        "tip": shown.tip,
        "output_tail": shown.output_tail,
        "history": history,
        "attempts": rows,
        "why": why,
        "cost": jsonable(mine[0]) if mine else None,
        "salvage": list(shown.salvage),
        "landing": jsonable(subj.landing),
        "queue": position,
        "worktrees": slots,
        "problems": list(shown.problems),
    }


def dlq(app: ops.App, factory: str | None) -> dict[str, Any]:
    """GET /api/dlq: entries waiting, newest first, each with its `dlq show` detail (the
    question of a needs_human entry, the diagnosis, the output tail)."""
    listed = ops.dlq_list(app, factory)
    entries = []
    for row in listed.rows:
        detail = ops.dlq_show(app, row.id)
        entries.append(
            {
                **jsonable(row),
                "question": detail.question,
                "diagnosis": detail.diagnosis,
                "diagnosis_entry": detail.diagnosis_entry,
                "output_tail": detail.output_tail[-LOG_TAIL:],
                "exit_code": detail.exit_code,
                "state": detail.state,
            }
        )
    # a question for a person first (needs_human), then newest first as listed
    entries.sort(key=lambda e: e["question"] is None)
    return {"entries": entries, "problems": list(listed.problems)}


def costs(app: ops.App, by: str) -> dict[str, Any]:
    """GET /api/costs?by=...: `costs --json`, with the agent/deterministic split."""
    return dict(jsonable(ops.costs_report(app, by=by)))


def graph(app: ops.App) -> dict[str, Any]:
    """The factories' states and steps and the cross-factory edges, for the picture."""
    gi = ops.graph_input(app)
    nodes = []
    edges = []
    for fac in gi.factories:
        nodes.append({"factory": fac.factory_id, "states": list(fac.states)})
        for step in fac.steps:
            for frm in step.from_states:
                edges.append(
                    {"factory": fac.factory_id, "from": frm, "to": step.to_state, "step": step.id}
                )
    cross = [  # requires: and emits: between factories
        {"from": list(src), "to": list(dst), "label": label, "emits": emits}
        for src, dst, label, emits in render.graph_edges(gi.factories)
    ]
    return {"factories": nodes, "edges": edges, "cross": cross}
