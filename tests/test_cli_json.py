"""`--json` output: the fast encoder (json's C walker with a one-level hook) says exactly what
render.jsonable says, for the result of every listing on a repository with real history."""

from __future__ import annotations

import json
from typing import Any

import pytest

from freq import ops, render
from freq.cli.base import _emit_json, _plain

from .conftest import FreqRepo

FACTORIES = {
    ".frequency/f.yaml": """
    factory_id: f
    state: {initial: new, terminal: [done]}
    steps:
      - {id: build, from_states: [new], to_state: built, run: "true"}
      - {id: ship, from_states: [built], to_state: done, locks: [deploy], run: "true"}
    """,
    ".frequency/g.yaml": """
    factory_id: g
    state: {initial: new, terminal: [done]}
    steps:
      - id: work
        from_states: [new]
        to_state: done
        run: "echo broken >&2; exit 3"
        retry: {max_attempts: 1}
    """,
}


@pytest.fixture
def history(freq_repo) -> FreqRepo:  # type: ignore[no-untyped-def]
    """Subjects done, waiting and dead-lettered, a released lock, a paused factory."""
    r: FreqRepo = freq_repo(FACTORIES)
    r.run("add", "f", "a", "b", "--data", "owner=ana").assert_success()
    r.run("add", "g", "x").assert_success()
    r.run("run", "--until-idle").assert_success()
    r.run("add", "f", "c").assert_success()
    r.run("pause", "f", "--reason", "incident").assert_success()
    return r


def _both(value: Any) -> tuple[Any, Any]:
    fast = json.loads(json.dumps(value, default=_plain, ensure_ascii=False))
    exact = json.loads(json.dumps(render.jsonable(value), ensure_ascii=False))
    return fast, exact


def test_fast_encoder_agrees_with_jsonable_on_every_result(history: FreqRepo) -> None:
    """plan, status, show, log, why, dlq, locks, validate, cleanup, costs: the same JSON
    either way."""
    app = ops.App(history.path)
    try:
        entry = ops.dlq_list(app).rows[0].id
        results = {
            "plan": ops.plan_now(app),
            "status": ops.status(app),
            "show": ops.show(app, "g", "x"),
            "log": ops.log(app),
            "why": ops.why(app, "f", "c"),
            "dlq list": ops.dlq_list(app, include_requeued=True),
            "dlq show": ops.dlq_show(app, entry),
            "locks": ops.list_locks(app, include_free=True),
            "validate": ops.validate(app, expand=True),
            "cleanup": ops.cleanup(app, repair=True, dry_run=True),
            "costs": ops.costs_report(app, by="day", since="2026-01-01"),
        }
        for name, value in results.items():
            fast, exact = _both(value)
            assert fast == exact, name
    finally:
        app.close()


def test_piped_json_is_one_line_and_keys_json_refuses_fall_back(capsys) -> None:  # type: ignore[no-untyped-def]
    """Off a terminal the JSON is one line; tuple keys take render.jsonable's exact walk."""
    _emit_json({("f", "new"): 2, "n": (1, 2)})
    assert capsys.readouterr().out == "{\"('f', 'new')\": 2, \"n\": [1, 2]}\n"


def test_cli_json_is_the_results_json(history: FreqRepo) -> None:
    """What `show --json` prints is the show result's JSON."""
    out = history.run("show", "g", "x", "--json").assert_success().out
    assert out.count("\n") == 1
    app = ops.App(history.path)
    try:
        assert json.loads(out) == _both(ops.show(app, "g", "x"))[1]
    finally:
        app.close()
