"""The dashboard's JSON API (SPEC §8) against a real `git freq serve` process on a real repo.

Each test starts the server as a subprocess on a free port and talks HTTP to it; changes
are checked in `git log --glob=refs/frequency`, refusals against the line the CLI prints.
"""

from __future__ import annotations

import http.client
import json
import socket
from urllib.parse import quote

import pytest

from .conftest import FreqRepo
from .dashboard import Server, cli_error, commits, serving

pytestmark = [pytest.mark.git, pytest.mark.e2e]

HOSTILE_OUT = "<img src=x onerror=alert(1)>"
FACTORY = """
factory_id: f
description: a test factory
state: {initial: new, terminal: [done, failed]}
steps:
  - id: work
    from_states: [new]
    to_state: built
    retry: {max_attempts: 1, backoff: {initial: 0s, factor: 1, max: 0s, jitter: 0}}
    locks: [deploy]
    run: 'test -f ok || { echo "permission denied <img src=x onerror=alert(1)>"; exit 1; }'
  - id: sign_off
    from_states: [built]
    to_state: done
"""


@pytest.fixture
def project(freq_repo) -> FreqRepo:  # type: ignore[no-untyped-def]
    r: FreqRepo = freq_repo({".frequency/f.yaml": FACTORY})
    r.run("add", "f", "x", "y", "--data", "note=<script>alert(1)</script>").assert_success()
    return r


def _parked(server: Server) -> dict[str, str]:
    """Each parked subject's dead-letter entry (two failing at once end in either order)."""
    return {s["name"]: s["parked"] for s in server.get("/api/state")["subjects"] if s["parked"]}


@pytest.fixture
def server(project: FreqRepo):  # type: ignore[no-untyped-def]
    with serving(project.path) as s:
        yield s


def test_state_lists_factories_counts_and_subjects(project: FreqRepo, server: Server) -> None:
    """GET /api/state: each factory with counts per state, steps and control; each subject
    with its state and data-free card fields; locks and problems as lists."""
    state = server.get("/api/state")
    (fac,) = state["factories"]
    assert fac["factory"] == "f" and fac["description"] == "a test factory"
    assert fac["states"] == [
        {"state": "new", "count": 2},
        {"state": "built", "count": 0},
        {"state": "done", "count": 0},
        {"state": "failed", "count": 0},
    ]
    assert (fac["paused"], fac["autonomy"], fac["dlq_waiting"], fac["running"]) == (
        False,
        "auto",
        0,
        0,
    )
    assert [s["id"] for s in fac["steps"]] == ["work", "sign_off"]
    assert [(s["name"], s["state"], s["attempt"]) for s in state["subjects"]] == [
        ("x", "new", 0),
        ("y", "new", 0),
    ]
    assert state["running"] == [] and state["locks"] == [] and state["problems"] == []
    assert set(state) >= {"quotas", "queues", "budgets", "now", "version"}
    assert state["caps"] == [{"cap": "max_parallel", "limit": 4, "used": 0}]


def test_every_response_carries_the_security_headers(server: Server) -> None:
    """The page, its script, the API and refusals: a CSP without inline script, nosniff."""
    for method, path in (
        ("GET", "/"),
        ("GET", "/static/app.js"),
        ("GET", "/api/state"),
        ("POST", "/api/factories/f/pause"),
    ):
        got = server.request(method, path, {} if method == "POST" else None, token=None)
        csp = got.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp, (path, csp)
        assert "default-src 'none'" in csp
        assert got.headers["x-content-type-options"] == "nosniff", path
    page = server.request("GET", "/", token=None).body
    assert '<script src="/static/app.js" defer></script>' in page
    assert "<script>" not in page and " on" not in page.split("<body>")[1].split("=")[0]


def test_changing_requests_need_the_token_and_the_same_origin(
    project: FreqRepo, server: Server
) -> None:
    """No token or a wrong one: 401; a foreign Origin even with the token: 403; nothing is
    written. The server's own Origin, or none (a script), with the token: accepted."""
    before = commits(project.path)
    path = "/api/factories/f/pause"
    no_token = server.post(path, {"reason": "r"}, token=None)
    assert no_token.status == 401 and no_token.headers["www-authenticate"] == "Bearer"
    assert no_token.body == {"error": "refused: changing requests need Authorization: Bearer TOKEN"}
    assert server.post(path, token="wrong").status == 401
    foreign = server.post(path, origin="http://evil.example")
    assert foreign.status == 403
    assert foreign.body["error"] == "refused: this request comes from another origin"
    assert server.post(path, origin=f"http://localhost:{server.port}x").status == 403
    assert commits(project.path) == before
    own = server.post(path, {"reason": "incident"}, origin=server.origin)
    assert own.status == 200 and own.body["paused"] is True
    assert server.post("/api/factories/f/resume").status == 200  # no Origin: a script
    assert len(commits(project.path)) == len(before) + 2


def test_a_foreign_host_name_reads_nothing(server: Server) -> None:
    """A page of another name rebound to 127.0.0.1 (DNS rebinding) is refused: 421."""
    got = server.request("GET", "/api/state", token=None, host=f"evil.example:{server.port}")
    assert got.status == 421
    assert server.request("GET", "/api/state", host=f"localhost:{server.port}").status == 200


def test_every_action_is_a_commit_by_the_dashboard_user(project: FreqRepo, server: Server) -> None:
    """pause, resume, autonomy, transition, approve, requeue and break lock each land as one
    commit under refs/frequency, attributed to `dashboard:<user>`, with the reason."""
    project.run("run", "--until-idle").assert_success()  # work fails: both parked
    parked = _parked(server)
    assert sorted(parked.values()) == ["f#1", "f#2"]  # in the order their attempts ended
    actions = [
        ("/api/factories/f/pause", {"reason": "incident"}, "f: pause"),
        ("/api/factories/f/resume", {"reason": "over"}, "f: resume"),
        ("/api/factories/f/autonomy", {"level": "supervised", "reason": "review"}, "f: autonomy"),
        (f"/api/dlq/{quote(parked['x'])}/requeue", {"reason": "fixed <b>it</b>"}, "f/x"),
        ("/api/subjects/f/x/transition", {"state": "built", "reason": "by hand"}, "f/x"),
        ("/api/approvals/f/x/sign_off", {"reason": "looks good"}, "f/x"),
        ("/api/locks/deploy/break", {"reason": "tidy"}, "deploy"),
    ]
    for path, body, subject_starts in actions:
        before = commits(project.path)
        got = server.post(path, body)
        assert got.status == 200, (path, got.body)
        after = commits(project.path)
        new = [c for c in after if c not in before]
        assert new, path
        assert any(subject_starts in c for c in new), (path, new)
        message = project.git("show", "-s", "--format=%B", new[0].split()[0])
        assert "dashboard:" in message, (path, message)
    shown = json.loads(project.run("show", "f", "x", "--json").out)["subject"]
    assert shown["state"] == "done"
    assert "looks good" in project.git("log", "--format=%B", "refs/frequency/subjects/f/x")


def test_a_refused_action_answers_the_line_the_cli_prints(
    project: FreqRepo, server: Server
) -> None:
    """A second requeue (409), an unknown state (400), a fix without a diagnosis, an
    unknown subject (404) and a lock break without a reason: the CLI's own one line."""
    project.run("run", "--until-idle").assert_success()
    assert server.post("/api/dlq/f%231/requeue", {"reason": "once"}).status == 200
    again = server.post("/api/dlq/f%231/requeue", {"reason": "twice"})
    assert again.status == 409
    assert again.body["error"] == cli_error(project.path, "dlq", "requeue", "f#1")
    assert again.body["code"] == "already-requeued"
    bad_state = server.post("/api/subjects/f/y/transition", {"state": "nope", "reason": "r"})
    assert bad_state.status == 400
    assert bad_state.body["error"] == cli_error(
        project.path, "transition", "f", "y", "nope", "--reason", "r"
    )
    no_fix = server.post("/api/dlq/f%232/fix", {})
    assert no_fix.status == 409
    assert no_fix.body["error"] == cli_error(project.path, "dlq", "fix", "f#2")
    missing = server.post("/api/subjects/f/nobody/transition", {"state": "new", "reason": "r"})
    assert missing.status == 404
    assert missing.body["error"] == cli_error(
        project.path, "transition", "f", "nobody", "new", "--reason", "r"
    )
    no_agent = server.post("/api/dlq/f%232/diagnose", {})
    assert no_agent.status == 409
    assert no_agent.body["error"] == cli_error(project.path, "dlq", "diagnose", "f#2")
    not_json = server.request("POST", "/api/factories/f/pause", None)
    assert not_json.status == 200  # an empty body is {}
    bad_body = server.post("/api/factories/f/autonomy", {"level": 3})
    assert bad_body.status == 400 and bad_body.body["error"] == "level must be a string"


def test_subject_dlq_costs_and_graph_reads(project: FreqRepo, server: Server) -> None:
    """A subject's history, attempts with their log, why; the DLQ with the output tail;
    costs grouped; the graph's states and edges. Hostile text comes back as plain text."""
    project.run("run", "--until-idle").assert_success()
    entry = _parked(server)["x"]
    d = server.get("/api/subjects/f/x")
    assert d["subject"]["state"] == "new" and d["subject"]["parked"] == entry
    assert d["subject"]["data"] == {"note": "<script>alert(1)</script>"}
    assert [a["step"] for a in d["attempts"]] == ["work"]
    assert HOSTILE_OUT in d["attempts"][0]["log"]
    assert d["why"]["kind"] == "dlq"
    assert (d["queue"], d["worktrees"], d["landing"]) == (None, [], None)
    assert any("parked in dead-letter queue" in h["summary"] for h in d["history"])
    dlq = server.get("/api/dlq")
    assert sorted(e["id"] for e in dlq["entries"]) == ["f#1", "f#2"]
    assert all(HOSTILE_OUT in e["output_tail"] for e in dlq["entries"])
    assert server.get("/api/dlq?factory=f")["entries"][0]["failure_class"] == "terminal"
    costs = server.get("/api/costs?by=factory")
    assert costs["by"] == "factory" and costs["total"]["attempts"] == 2
    assert costs["split"]["agent_attempts"] == 0
    bad = server.request("GET", "/api/costs?by=colour", token=None)
    assert bad.status == 400 and bad.body["error"].startswith("cannot group by 'colour'")
    graph = server.get("/api/graph")
    assert graph["factories"] == [{"factory": "f", "states": ["new", "built", "done", "failed"]}]
    assert {(e["from"], e["to"]) for e in graph["edges"]} == {("new", "built"), ("built", "done")}
    missing = server.request("GET", "/api/subjects/f/nobody", token=None)
    assert missing.status == 404 and missing.body["error"].startswith("no subject 'nobody'")


def _sse_lines(conn: http.client.HTTPConnection) -> http.client.HTTPResponse:
    conn.request("GET", "/api/events", headers={"accept": "text/event-stream"})
    res = conn.getresponse()
    assert res.status == 200 and res.getheader("content-type", "").startswith("text/event-stream")
    return res


def _next_event(res: http.client.HTTPResponse) -> tuple[str, list[str]]:
    """The next event's name and its lines (comments skipped)."""
    name, lines = "", []
    while True:
        raw = res.readline()
        assert raw, "the event stream ended"
        line = raw.decode().rstrip("\r\n")
        if not line:
            if name or lines:
                return name, lines
            continue
        if line.startswith(":"):
            continue
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        lines.append(line)


def test_an_event_arrives_after_a_plain_git_update_ref(project: FreqRepo, server: Server) -> None:
    """The stream says hello with a retry: delay (EventSource reconnects by itself), then
    sends `change` when a ref under refs/frequency moves by plain git, not by Frequency."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        res = _sse_lines(conn)
        name, lines = _next_event(res)
        assert name == "hello" and "retry: 1000" in lines
        tip = project.git("rev-parse", "refs/frequency/subjects/f/x").strip()
        parent = project.git("rev-parse", "refs/frequency/subjects/f/y").strip()
        for change in (
            ("update-ref", "refs/frequency/subjects/f/x", parent, tip),  # a loose ref moved
            ("update-ref", "refs/frequency/subjects/f/z", tip),  # a new one
            ("pack-refs", "--all"),  # packed-refs rewritten, the loose files removed
            ("update-ref", "-d", "refs/frequency/subjects/f/z"),  # a packed one deleted
        ):
            project.git(*change)
            name, _ = _next_event(res)
            assert name == "change", change
    finally:
        conn.close()


def test_the_page_ships_every_asset_it_names() -> None:
    """index.html names only its own script and style, which are package files (the wheel
    carries freq/web/static), and no asset refers to another origin."""
    import re
    from pathlib import Path

    static = Path(__file__).resolve().parent.parent / "freq" / "web" / "static"
    page = (static / "index.html").read_text()
    named = re.findall(r'(?:src|href)="(/static/[^"]+)"', page)
    assert sorted(named) == ["/static/app.css", "/static/app.js"]
    for path in static.iterdir():
        text = path.read_text()
        others = set(re.findall(r"https?://[^\s'\"`)]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not others, (path.name, others)
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, path.name


def test_a_non_loopback_host_needs_a_token(project: FreqRepo) -> None:
    """--host 0.0.0.0 without FREQ_TOKEN: one line, exit 2, nothing listening."""
    res = project.run_process("serve", "--host", "0.0.0.0", "--port", "0")
    assert res.code == 2
    assert res.err == (
        "git freq: --host 0.0.0.0 is reachable from other machines; set FREQ_TOKEN to listen "
        "there (see `git freq serve --help`)\n"
    )


def test_a_busy_port_is_one_line(project: FreqRepo) -> None:
    """A port already taken: one line, exit 1, no traceback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = project.run_process("serve", "--port", str(port))
    res.assert_failure(1)
    assert res.err.startswith(f"git freq: cannot listen on 127.0.0.1:{port}: ")
    assert len(res.err.splitlines()) == 1


def test_the_printed_url_and_token(project: FreqRepo) -> None:
    """Without FREQ_TOKEN a random token is made and printed with the URL; the token goes
    after #, which browsers never send (so it is in no server's log)."""
    with serving(project.path, token="") as s:
        out = s.proc.stdout
        assert out is not None
        line = out.readline()
        assert line.startswith("token: ") and len(line.strip()) > 30
        assert s.url.startswith("http://127.0.0.1:") and "token" not in s.url


def test_diagnose_then_fix_from_the_api(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """Diagnose runs the `diagnose` agent (here a command) and appends its root cause;
    Fix requeues with it: two commits on the queue, one on the subject, by the dashboard."""
    r: FreqRepo = freq_repo(
        {
            ".frequency/f.yaml": FACTORY,
            ".frequency/frequency.yaml": (
                "agents:\n  diagnose:\n    use: command\n"
                "    args: [sh, -c, 'echo \"the ok file is missing\"', diagnose]\n"
            ),
        }
    )
    r.run("add", "f", "x").assert_success()
    r.run("run", "--until-idle").assert_success()
    with serving(r.path) as server:
        got = server.post("/api/dlq/f%231/diagnose")
        assert got.status == 200, got.body
        assert (got.body["diagnosis_entry"], got.body["root_cause"]) == (
            "f#2",
            "the ok file is missing",
        )
        shown = server.get("/api/dlq")["entries"][0]
        assert (shown["id"], shown["diagnosis"]) == ("f#1", "the ok file is missing")
        fixed = server.post("/api/dlq/f%231/fix", {"reason": "add it"})
        assert fixed.status == 200, fixed.body
        assert fixed.body["requeue_entry"] == "f#3"
    queue = r.git("log", "--format=%s%n%b", "refs/frequency/dlq/f")
    assert "dlq f#3: requeue f#1 (f/x)" in queue and "dashboard:" in queue
    subject = r.git("log", "-1", "--format=%B", "refs/frequency/subjects/f/x")
    assert "dashboard:" in subject


def test_a_changed_configuration_reaches_the_api_and_the_stream(
    project: FreqRepo, server: Server
) -> None:
    """Editing .frequency/ while serving: an event is sent, and the next read has the new
    factory; a configuration made invalid is refused in the CLI's words until fixed."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=20)
    try:
        res = _sse_lines(conn)
        assert _next_event(res)[0] == "hello"
        project.write(
            ".frequency/g.yaml",
            "factory_id: g\nstate: {initial: a, terminal: [b]}\n"
            "steps:\n  - {id: go, from_states: [a], to_state: b, run: 'true'}\n",
        )
        assert _next_event(res)[0] == "change"
    finally:
        conn.close()
    assert [f["factory"] for f in server.get("/api/state")["factories"]] == ["f", "g"]
    project.write(".frequency/g.yaml", "factory_id: g\nstate: {initial: a}\nsteps: nope\n")
    broken = server.request("GET", "/api/state", token=None)
    assert broken.status == 503, broken.body
    cli = project.run("status").assert_failure().err.splitlines()
    assert broken.body["problems"] == [line for line in cli if not line.startswith("git freq:")]
    assert broken.body["error"] == "; ".join(broken.body["problems"])
    (project.path / ".frequency/g.yaml").unlink()
    assert [f["factory"] for f in server.get("/api/state")["factories"]] == ["f"]
