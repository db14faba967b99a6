"""The dashboard: `git freq serve`, one page and a JSON API over the same ops as the CLI.

Must not import click, dulwich, subprocess or pexpect; the only package importing starlette,
uvicorn and sse_starlette (import-linter contract). `api` turns ops results into JSON (no
ASGI), `events` watches refs/frequency for changes, `app` builds the Starlette app and
serves it; `static/` is the page (hand-written, no build step), shipped in the wheel.
Importing this package imports none of its modules: `git freq --help` stays click alone.
"""
