"""The dashboard in a real Chromium: the board, live updates, actions, refusals, inert text.

Every test runs `git freq serve` as a real process on a real repository and waits on
conditions (Playwright's expect), never on time.
"""

from __future__ import annotations

import http.server
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import FreqRepo
from tests.dashboard import Server, commits, serving, stop

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

WAIT = 15_000  # ms: the longest any condition may take (a live update takes < 1 s)
HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_LOG = "<img src=x onerror=alert(1)>"
FACTORY = f"""
factory_id: f
description: "{HOSTILE_NAME}"
state: {{initial: new, terminal: [done, failed]}}
steps:
  - id: work
    from_states: [new]
    to_state: built
    retry: {{max_attempts: 1, backoff: {{initial: 0s, factor: 1, max: 0s, jitter: 0}}}}
    run: 'test -z "$FREQ_DATA_FAIL" || {{ echo "permission denied {HOSTILE_LOG}"; exit 1; }}'
  - id: sign_off
    from_states: [built]
    to_state: done
"""
OTHER = """
factory_id: g
state: {initial: new, terminal: [done]}
steps:
  - {id: go, from_states: [new], to_state: done, run: "true"}
"""


@pytest.fixture
def project(freq_repo) -> FreqRepo:  # type: ignore[no-untyped-def]
    r: FreqRepo = freq_repo({".frequency/f.yaml": FACTORY, ".frequency/g.yaml": OTHER})
    r.run("add", "f", "a1", "a2").assert_success()
    r.run("add", "f", "b1", "--state", "built").assert_success()
    return r


@pytest.fixture
def server(project: FreqRepo) -> Iterator[Server]:
    with serving(project.path) as s:
        yield s


def _open(page: Any, server: Server, route: str = "#/") -> None:
    """Open the printed URL (the token after #), then go to `route`, as a person would."""
    page.goto(f"{server.url}#token={server.token}")
    expect(page.locator("#live")).to_have_text("live", timeout=WAIT)
    page.evaluate("r => { location.hash = r; }", route)


def _column(page: Any, state: str) -> Any:
    return page.locator(f'section.column[data-state="{state}"]')


def test_the_board_shows_each_subject_in_its_state(page: Any, server: Server) -> None:
    """Columns are the factory's states; each card sits in its subject's state's column."""
    _open(page, server, "#/f/f")
    expect(_column(page, "new").locator(".card")).to_have_count(2, timeout=WAIT)
    expect(_column(page, "new").locator('[data-subject="a1"]')).to_be_visible()
    expect(_column(page, "built").locator('[data-subject="b1"]')).to_be_visible()
    expect(_column(page, "done").locator(".card")).to_have_count(0)
    expect(page.locator("section.column h2 span:first-child")).to_have_text(
        ["new", "built", "done", "failed"]
    )
    page.fill("#filter", "a2")
    expect(page.locator(".card")).to_have_count(1)
    expect(page.locator('.card[data-subject="a2"]')).to_be_visible()


def test_a_transition_by_another_process_appears_without_a_reload(
    page: Any, project: FreqRepo, server: Server
) -> None:
    """`git freq transition` in another process moves the card within the page, live."""
    _open(page, server, "#/f/f")
    expect(_column(page, "new").locator('[data-subject="a1"]')).to_be_visible(timeout=WAIT)
    page.evaluate("() => { window.notReloaded = true; }")
    moved = project.run_process("transition", "f", "a1", "done", "--reason", "by hand")
    moved.assert_success()
    expect(_column(page, "done").locator('[data-subject="a1"]')).to_be_visible(timeout=WAIT)
    expect(_column(page, "new").locator('[data-subject="a1"]')).to_have_count(0)
    assert page.evaluate("() => window.notReloaded") is True
    tip = project.git("rev-parse", "refs/frequency/subjects/f/a2").strip()
    project.git("update-ref", "-d", "refs/frequency/subjects/f/a2", tip)  # plain git, too
    expect(page.locator('.card[data-subject="a2"]')).to_have_count(0, timeout=WAIT)


def test_requeue_from_the_dlq_view_lands_in_git_log(
    page: Any, project: FreqRepo, server: Server
) -> None:
    """The DLQ lists the failure with its output; Requeue writes the requeue commit."""
    project.run("add", "f", "c1", "--data", "FAIL=1").assert_success()
    project.run("run", "--until-idle", "--factory", "f").assert_success()
    _open(page, server, "#/dlq")
    entry = page.locator('.dlq-entry[data-entry="f#1"]')
    expect(entry).to_be_visible(timeout=WAIT)
    expect(entry.locator("pre.log")).to_contain_text(HOSTILE_LOG)
    entry.locator("input").fill("fixed the key")
    entry.locator("button.requeue").click()
    expect(page.locator("#message")).to_have_text("f#1 requeued", timeout=WAIT)
    expect(entry).to_have_count(0, timeout=WAIT)
    log = project.git("log", "--format=%s%n%b", "refs/frequency/dlq/f")
    assert "dlq f#2: requeue f#1 (f/c1)" in log and "fixed the key" in log
    assert "dashboard:" in log
    state = json.loads(project.run("show", "f", "c1", "--json").out)["subject"]
    assert (state["state"], state["parked"]) == ("new", None)


def _worker(project: FreqRepo) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "freq", "run"],
        cwd=project.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def test_pause_from_the_page_stops_claims_in_a_running_worker(
    page: Any, project: FreqRepo, server: Server
) -> None:
    """A worker (`git freq run`) is running; Pause on the board stops it claiming in f
    while g goes on; Resume lets f's subject run."""
    worker = _worker(project)
    try:
        _open(page, server, "#/f/f")
        expect(_column(page, "built").locator(".card")).to_have_count(3, timeout=WAIT)
        page.fill("#control-reason", "incident")
        page.click("#pause")
        expect(page.locator("#paused")).to_be_visible(timeout=WAIT)
        project.run("add", "f", "p1").assert_success()
        project.run("add", "g", "q1").assert_success()  # after p1: a plan seeing q1 saw p1
        page.evaluate("() => { location.hash = '#/'; }")
        row = page.locator('tr[data-factory="g"]')
        expect(row).to_contain_text("done 1", timeout=WAIT)
        p1 = json.loads(project.run("show", "f", "p1", "--json").out)["subject"]
        assert (p1["state"], p1["claim"], p1["attempt"]) == ("new", None, 0)
        page.evaluate("() => { location.hash = '#/f/f'; }")
        page.click("#resume")
        expect(_column(page, "built").locator('[data-subject="p1"]')).to_be_visible(timeout=WAIT)
        control = project.git("log", "--format=%s", "refs/frequency/control/f").splitlines()
        assert control[:2] == ["f: resume", "f: pause"]
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGINT)
        stop(worker)


def test_changing_requests_without_the_token_or_from_another_origin_are_refused(
    page: Any, project: FreqRepo, server: Server
) -> None:
    """Without the token the page shows the server's one-line refusal; a page of another
    origin cannot make the dashboard write, with or without the token."""
    before = commits(project.path)
    page.goto(server.url)  # no #token=: the tab has none; the prompt is dismissed
    page.evaluate("() => { location.hash = '#/f/f'; }")
    page.click("#pause", timeout=WAIT)
    expect(page.locator("#message")).to_have_text(
        "refused: changing requests need Authorization: Bearer TOKEN", timeout=WAIT
    )
    assert page.dialogs and page.dialogs[0][0] == "prompt"
    with _other_site() as other:
        page.goto(other)
        outcome = _post_from_here(page, server)
    assert outcome == ["no-cors:opaque", "cors:failed"]  # sent and refused; preflight fails
    foreign = server.post("/api/factories/f/pause", origin=other.rstrip("/"))
    assert foreign.status == 403
    assert commits(project.path) == before


@contextmanager
def _other_site() -> Iterator[str]:
    """A page of another origin on this machine (another port of 127.0.0.1)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<!doctype html><p>another site</p>"
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=site.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}/"
    finally:
        site.shutdown()
        site.server_close()
        thread.join()


def _post_from_here(page: Any, server: Server) -> list[str]:
    """A simple POST (no preflight, so it is sent) and one with the token (preflighted)."""
    outcome = page.evaluate(
        """async ([url, token]) => {
            const out = [];
            try {
                const r = await fetch(url, {method: 'POST', mode: 'no-cors',
                    headers: {'content-type': 'text/plain'}, body: '{}'});
                out.push('no-cors:' + r.type);
            } catch (e) { out.push('no-cors:failed'); }
            try {
                const r = await fetch(url, {method: 'POST',
                    headers: {'content-type': 'application/json',
                              authorization: 'Bearer ' + token}, body: '{}'});
                out.push('cors:' + r.status);
            } catch (e) { out.push('cors:failed'); }
            return out;
        }""",
        [f"{server.url}api/factories/f/pause", server.token],
    )
    assert isinstance(outcome, list)
    return outcome


def test_hostile_names_and_logs_render_as_text(
    page: Any, project: FreqRepo, server: Server
) -> None:
    """A description and data of `<script>…`, a log and a reason of `<img onerror>`: shown
    as the characters they are; no dialog opens, no element is made of them."""
    project.run("add", "f", "h1", "--data", f"FAIL={HOSTILE_NAME}").assert_success()
    project.run("run", "--until-idle", "--factory", "f").assert_success()
    project.run("transition", "f", "b1", "new", "--reason", HOSTILE_LOG).assert_success()
    tip = project.git("rev-parse", "refs/frequency/subjects/f/b1").strip()
    project.git("update-ref", "refs/frequency/subjects/f/<script>alert(1)<", tip)  # by hand
    _open(page, server, "#/")
    expect(page.locator("#factories")).to_contain_text(HOSTILE_NAME, timeout=WAIT)
    expect(page.locator("#problems")).to_contain_text("f/<script>alert(1)<: not a Frequency")
    page.evaluate("() => { location.hash = '#/s/f/h1'; }")
    expect(page.locator("pre.log").first).to_contain_text(HOSTILE_LOG, timeout=WAIT)
    expect(page.locator(".kv")).to_contain_text(HOSTILE_NAME)
    page.evaluate("() => { location.hash = '#/s/f/b1'; }")
    expect(page.locator("#subject-name")).to_have_text("b1", timeout=WAIT)
    expect(page.locator("#history")).to_contain_text(HOSTILE_LOG, timeout=WAIT)
    page.evaluate("() => { location.hash = '#/dlq'; }")
    expect(page.locator(".dlq-entry pre.log").first).to_contain_text(HOSTILE_LOG, timeout=WAIT)
    assert page.locator("#view img").count() == 0
    assert page.locator("#view script").count() == 0
    assert page.dialogs == []


def test_a_refused_move_shows_the_cli_line(page: Any, server: Server) -> None:
    """Move without a reason: the one line the CLI prints for `transition` without one."""
    _open(page, server, "#/s/f/a1")
    page.select_option("#to-state", "done", timeout=WAIT)
    page.click("#move")
    expect(page.locator("#message")).to_have_text(
        "a reason is required; say why with --reason", timeout=WAIT
    )
    page.fill("#move-reason", "shipped by hand")
    page.click("#move")
    expect(page.locator("#subject-state")).to_have_text("done", timeout=WAIT)


def test_the_page_reconnects_after_the_server_restarts(page: Any, project: FreqRepo) -> None:
    """Stop the server, start it again on the same port: the open page reconnects by
    itself (EventSource and the stream's retry:) and shows a change made meanwhile."""
    with serving(project.path) as first:
        port = first.port
        _open(page, first, "#/f/f")
        expect(_column(page, "new").locator('[data-subject="a1"]')).to_be_visible(timeout=WAIT)
    expect(page.locator("#live")).to_have_text("reconnecting", timeout=WAIT)
    project.run("transition", "f", "a1", "built", "--reason", "while it was down")
    with serving(project.path, args=("--port", str(port))):
        expect(page.locator("#live")).to_have_text("live", timeout=WAIT)
        expect(_column(page, "built").locator('[data-subject="a1"]')).to_be_visible(timeout=WAIT)


def test_what_is_typed_survives_a_live_update(page: Any, project: FreqRepo, server: Server) -> None:
    """A reason being typed keeps its text and focus while the board redraws for a change
    made elsewhere."""
    _open(page, server, "#/f/f")
    field = page.locator("#control-reason")
    field.fill("half a sent")
    field.focus()
    project.run_process("transition", "f", "a1", "done", "--reason", "x").assert_success()
    expect(_column(page, "done").locator('[data-subject="a1"]')).to_be_visible(timeout=WAIT)
    expect(page.locator("#control-reason")).to_have_value("half a sent")
    expect(page.locator("#control-reason")).to_be_focused()


def test_a_long_column_is_paged_and_filtered(page: Any, project: FreqRepo, server: Server) -> None:
    """250 subjects in one state: 100 cards, then 100 more per click; the filter finds one
    of those not drawn yet."""
    listing = "".join(f"n{i:03d}\n" for i in range(248))
    project.run("add", "f", "--from", "-", stdin=listing).assert_success()
    _open(page, server, "#/f/f")
    column = _column(page, "new")
    expect(column.locator(".count")).to_have_text("250", timeout=WAIT)
    expect(column.locator(".card")).to_have_count(100)
    column.locator("button.more").click()
    expect(column.locator(".card")).to_have_count(200)
    expect(column.locator("button.more")).to_have_text("show 50 more of 50")
    page.fill("#filter", "n247")
    expect(column.locator(".card")).to_have_count(1)
    expect(column.locator('[data-subject="n247"]')).to_be_visible()


def test_every_view_draws_without_a_script_error(
    page: Any, project: FreqRepo, server: Server
) -> None:
    """Factories, board, subject, DLQ, locks and caps, costs (each grouping) and the graph
    draw their content, and the page reports no script error on any of them."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    project.run("add", "g", "q1").assert_success()
    project.run("run", "--until-idle", "--factory", "g").assert_success()
    _open(page, server, "#/")
    expect(page.locator('tr[data-factory="g"]')).to_contain_text("done 1", timeout=WAIT)
    views = {
        "#/f/g": "#board",
        "#/s/g/q1": "#history",
        "#/dlq": "h1",
        "#/locks": "#caps",
        "#/costs/step": "svg[aria-label='cost']",
        "#/costs/day": "svg[aria-label='attempts']",
        "#/graph": "#graph rect",
    }
    for route, shown in views.items():
        page.evaluate("r => { location.hash = r; }", route)
        expect(page.locator(shown).first).to_be_visible(timeout=WAIT)
    expect(page.locator("#graph rect")).to_have_count(6)  # f: 4 states, g: 2
    assert errors == []


def test_a_running_attempt_shows_its_log_as_it_grows(page: Any, project: FreqRepo) -> None:
    """A step that prints, then waits for a file: its subject page shows it running with
    the first line of its log, the next line once printed, then the state it moved to."""
    project.write(
        ".frequency/g.yaml",
        OTHER.replace(
            'run: "true"',
            "run: 'echo first line; while [ ! -f go ]; do sleep 0.05; done; echo second line'",
        ),
    )
    project.run("add", "g", "q1").assert_success()
    with serving(project.path) as server:
        worker = _worker(project)
        try:
            _open(page, server, "#/s/g/q1")
            attempt = page.locator(".attempt").first
            expect(attempt.locator(".badge.running")).to_be_visible(timeout=WAIT)
            expect(attempt.locator("pre.log")).to_contain_text("first line", timeout=WAIT)
            (project.path / "go").write_text("")
            expect(page.locator("#subject-state")).to_have_text("done", timeout=WAIT)
            expect(page.locator(".attempt pre.log").first).to_contain_text("second line")
        finally:
            if worker.poll() is None:
                worker.send_signal(signal.SIGINT)
            stop(worker)
