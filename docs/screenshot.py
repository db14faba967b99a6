"""`make screenshot`: the demo's board in Chromium, saved as docs/img/board.png.

Builds the app-factory demo (examples/app-factory/run-demo.sh) in a temporary repository,
adds a few subjects so every column has something to show, serves it with `git freq serve`
and photographs the build factory's board with Playwright driving Debian's Chromium.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("FREQ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def main(out: Path) -> int:
    from playwright.sync_api import expect, sync_playwright

    with tempfile.TemporaryDirectory(prefix="freq-screenshot-") as tmp:
        repo = Path(tmp) / "demo"
        subprocess.run(
            ["bash", str(ROOT / "examples/app-factory/run-demo.sh"), str(repo)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        freq = [sys.executable, "-m", "freq"]
        subprocess.run([*freq, "add", "build", "app-4", "app-5", "app-6"], cwd=repo, check=True)
        subprocess.run(
            [*freq, "transition", "build", "app-5", "implemented", "--reason", "by hand"],
            cwd=repo,
            check=True,
        )
        subprocess.run([*freq, "pause", "deploy", "--reason", "release freeze"], cwd=repo, check=True)
        # agent steps wait for approval under supervised: the cards say so
        subprocess.run([*freq, "autonomy", "build", "supervised"], cwd=repo, check=True)
        env = {**os.environ, "FREQ_TOKEN": "screenshot"}
        server = subprocess.Popen(
            [*freq, "serve", "--port", "0"], cwd=repo, env=env, stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            url = server.stdout.readline().split()[1].split("#", 1)[0]
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1500, "height": 820})
                page.goto(f"{url}#token=screenshot")
                expect(page.locator("#live")).to_have_text("live", timeout=15_000)
                page.evaluate("() => { location.hash = '#/f/build'; }")
                expect(page.locator(".card").first).to_be_visible(timeout=15_000)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=False)
                browser.close()
        finally:
            server.terminate()
            server.wait(15)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs/img/board.png")))
