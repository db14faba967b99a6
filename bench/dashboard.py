"""Figure (m): the dashboard (`git freq serve`), as a real server process.

  1. GET /api/state for 10 factories x 500 subjects over HTTP (the client's JSON decode
     included), median of warm requests, against the same state built in-process by the
     same ops reads on a warm App (freq.web.api.state: status, plan, snapshot, locks,
     costs), one of each in turn, medians; both processes freeze what their first read
     left alive (gc.freeze), as `serve` does; target: at most 1.5x. A fresh process's first load
     (a new App, caches on disk) is reported beside it.
  2. A ref change to the page showing it: a subject moved by `ops.transition` in this
     process; the time from the write's return to the card appearing in its new column
     of the board open in Chromium (a MutationObserver stamps it), median and p95 over
     the samples; target: p95 under 1 s. Without Chromium, the time to the `change`
     event on /api/events (an SSE client) instead, said in the row.
  3. The board of one factory of 5,000 subjects in Chromium: from the route change to
     the board drawn (the /api/state fetch included), and the drawing alone (reported).

Returns Row keyword dicts (bench/run.py turns them into Row), as bench/agents.py does.
"""

from __future__ import annotations

import gc
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("FREQ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
TOKEN = "bench"


def _factory(fid: str) -> str:
    return (
        f"factory_id: {fid}\n"
        "state: {initial: new, terminal: [done]}\n"
        "steps:\n"
        "  - {id: work, from_states: [new], to_state: done, run: 'true'}\n"
    )


def _project(path: Path, env: dict[str, str], factories: dict[str, int]) -> Path:
    """A repository with these factories and that many subjects in each (one `add` each)."""
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, env=env, check=True)
    (path / ".frequency").mkdir()
    for fid in factories:
        (path / ".frequency" / f"{fid}.yaml").write_text(_factory(fid))
    freq = [sys.executable, "-m", "freq"]
    for fid, n in factories.items():
        listing = "".join(f"{fid}-s{i:05d}\n" for i in range(n))
        subprocess.run(
            [*freq, "add", fid, "--from", "-"],
            cwd=path,
            env=env,
            input=listing,
            text=True,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return path


@contextmanager
def _serving(repo: Path, env: dict[str, str]) -> Iterator[int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "freq", "serve", "--port", "0"],
        cwd=repo,
        env={**env, "FREQ_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[1].split("#", 1)[0]
        yield int(url.rsplit(":", 1)[1].strip("/"))
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()


def _get(port: int, path: str) -> tuple[Any, float]:
    """The decoded JSON, and what the server says its ops reads took (Server-Timing)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", path)
        res = conn.getresponse()
        body = res.read()
        assert res.status == 200, (res.status, body[:200])
        spent = float((res.getheader("server-timing") or "dur=0").split("dur=")[1]) / 1e3
        return json.loads(body), spent
    finally:
        conn.close()


def _state_rows(repo: Path, env: dict[str, str], n: int, reps: int) -> list[dict[str, Any]]:
    """The server's warm GET and the in-process build, taken in turns (one of each per
    round), so a busy machine weighs on both alike."""
    from freq import ops
    from freq.web import api

    app = ops.App(repo)
    try:
        t = time.perf_counter()
        api.state(app)
        first = time.perf_counter() - t
        gc.collect()
        gc.freeze()  # as `serve` does after its first read (freq/web/app.py _warm): like for like
        with _serving(repo, env) as port:
            t = time.perf_counter()
            got, _ = _get(port, "/api/state")
            cold = time.perf_counter() - t
            assert len(got["subjects"]) == n, len(got["subjects"])
            times, floors, inside = [], [], []
            for _ in range(reps):
                t = time.perf_counter()
                api.state(app)
                floors.append(time.perf_counter() - t)
                t = time.perf_counter()
                _, spent = _get(port, "/api/state")
                times.append(time.perf_counter() - t)
                inside.append(spent)
    finally:
        app.close()
    floor = statistics.median(floors)
    floor_text = "the same state built in-process (freq.web.api.state, warm App), median"
    return [
        {
            "figure": "m",
            "what": "GET /api/state, 10 factories x 500 subjects (warm)",
            "size": n,
            "measured_s": statistics.median(times),
            "floor_s": floor,
            "floor": floor_text,
            "target": 1.5,
            "note": f"median of {reps}, the client's JSON decode included; the server's own "
            f"ops reads {statistics.median(inside) * 1e3:.0f} ms of it (Server-Timing); "
            f"its first request {cold * 1e3:.0f} ms",
        },
        {
            "figure": "m",
            "what": "the same state, a fresh App's first load in-process",
            "size": n,
            "measured_s": first,
            "floor_s": floor,
            "floor": floor_text,
            "note": "caches on disk, as a new `serve` process finds them",
        },
    ]


def _p95(xs: list[float]) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


# stamps window.shownAt[name] with the wall clock when the card is in the done column
OBSERVE = """([name]) => {
    window.shownAt = window.shownAt || {};
    const seen = () => document.querySelector(
        `section.column[data-state="done"] [data-subject="${name}"]`);
    const watch = new MutationObserver(() => {
        if (seen()) { watch.disconnect(); window.shownAt[name] = Date.now(); }
    });
    watch.observe(document.getElementById('view'), {childList: true, subtree: true});
}"""


def _latency_browser(repo: Path, port: int, fid: str, samples: int) -> list[float]:
    from playwright.sync_api import expect, sync_playwright

    from freq import ops

    app = ops.App(repo)
    out = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/#token={TOKEN}")
            expect(page.locator("#live")).to_have_text("live", timeout=60_000)
            page.evaluate("r => { location.hash = r; }", f"#/f/{fid}")
            expect(page.locator("section.column").first).to_be_visible(timeout=60_000)
            for i in range(samples):
                name = f"{fid}-s{i:05d}"
                page.evaluate(OBSERVE, [name])  # watching before the write
                ops.transition(app, fid, name, "done", reason="bench")
                moved = time.time()  # wall clock: compared with the browser's Date.now()
                shown = page.wait_for_function(
                    "n => window.shownAt[n]", arg=name, timeout=30_000
                ).json_value()
                out.append(shown / 1000 - moved)
            browser.close()
    finally:
        app.close()
    return out


def _latency_sse(repo: Path, port: int, fid: str, samples: int) -> list[float]:
    from freq import ops

    app = ops.App(repo)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    try:
        conn.request("GET", "/api/events")
        res = conn.getresponse()

        def event() -> str:
            while True:
                line = res.readline().decode().strip()
                if line.startswith("event:"):
                    return line.split(":", 1)[1].strip()

        assert event() == "hello"
        for i in range(samples):
            ops.transition(app, fid, f"{fid}-s{i:05d}", "done", reason="bench")
            t = time.perf_counter()
            while event() != "change":
                pass
            out.append(time.perf_counter() - t)
    finally:
        conn.close()
        app.close()
    return out


def _board_5000(repo: Path, env: dict[str, str], reps: int) -> tuple[float, float]:
    from playwright.sync_api import expect, sync_playwright

    with _serving(repo, env) as port, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"http://127.0.0.1:{port}/#token={TOKEN}")
        expect(page.locator("#live")).to_have_text("live", timeout=60_000)
        routed, drawn = [], []
        for _ in range(reps):
            page.evaluate("() => { location.hash = '#/'; }")
            expect(page.locator("#factories")).to_be_visible(timeout=60_000)
            routed.append(
                page.evaluate(
                    """() => new Promise((resolve) => {
                        const t = performance.now();
                        const done = () => document.querySelector('#board .card');
                        const watch = new MutationObserver(() => {
                            if (done()) { watch.disconnect(); resolve(performance.now() - t); }
                        });
                        watch.observe(document.getElementById('view'),
                                      {childList: true, subtree: true});
                        location.hash = '#/f/big';
                    })"""
                )
                / 1000
            )
            drawn.append(
                page.evaluate(
                    "() => { const t = performance.now(); board(S.state, 'big');"
                    " document.body.offsetHeight; return performance.now() - t; }"
                )
                / 1000
            )
        browser.close()
    return statistics.median(routed), statistics.median(drawn)


def figure_m(tmp: Path, env: dict[str, str], per: int, samples: int) -> list[dict[str, Any]]:
    """The rows of figure (m): 10 factories x `per` subjects; `samples` ref changes."""
    env = {**env, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    facs = {f"f{k}": per for k in range(10)}
    repo = _project(tmp / "m-state", env, facs)
    n = 10 * per
    rows = _state_rows(repo, env, n, reps=15)
    browser = os.path.exists(CHROMIUM)
    with _serving(repo, env) as port:
        if browser:
            lat = _latency_browser(repo, port, "f0", samples)
            how = "page shows it (Chromium, MutationObserver)"
        else:
            lat = _latency_sse(repo, port, "f0", samples)
            how = "SSE change event (no Chromium: an SSE client)"
    rows += [
        {
            "figure": "m",
            "what": f"ref change -> {how}, p95",
            "size": n,
            "measured_s": _p95(lat),
            "floor_s": 1.0,
            "floor": "1 s (the issue's bound)",
            "target": 1.0,
            "note": f"median {statistics.median(lat) * 1e3:.0f} ms over {len(lat)} changes",
        },
        {
            "figure": "m",
            "what": f"ref change -> {how}, median",
            "size": n,
            "measured_s": statistics.median(lat),
            "floor_s": 1.0,
            "floor": "1 s (the issue's bound)",
        },
    ]
    if not browser:
        return rows
    big = _project(tmp / "m-board", env, {"big": 10 * per})
    routed, drawn = _board_5000(big, env, reps=5)
    rows.append(
        {
            "figure": "m",
            "what": "board of 5,000 subjects in Chromium: route change to drawn",
            "size": 10 * per,
            "measured_s": routed,
            "floor_s": 1.0,
            "floor": "1 s (the issue's bound)",
            "note": f"the /api/state fetch included; drawing alone {drawn * 1e3:.0f} ms "
            f"(100 cards a column, filter box)",
        }
    )
    return rows
