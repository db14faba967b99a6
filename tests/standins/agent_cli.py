#!/usr/bin/env python3
"""A stand-in for the claude, codex and gemini CLIs in tests: a real process (stdlib only)
that replays output the real CLIs printed (tests/agent_samples/) with their exit codes.

It is `tests/standins/bin/claude` (and `codex`, `gemini`), which run this with `--as NAME`;
or run it with argv[0] named like the CLI. Environment:

  STANDIN_SAMPLE=<file>  replay tests/agent_samples/<file>: a .jsonl/.json to stdout (and a
                         same-named .stderr.txt beside it to stderr), a .stderr.txt to stderr;
                         $REPO → the cwd, $HOME, $TMPDIR, $PKG → real paths; exit with the
                         sample's exit code (EXIT_CODES). Default: NAME-success.jsonl.
  STANDIN_LOG=<path>     append one JSON line per invocation: argv, cwd, stdin (how it was
                         given, and what it held), and the env the adapters set.
  STANDIN_WRITE=<rel>    on a success, write that file in the cwd (the step really edits).
  STANDIN_HANG=1         print the first two events, then sleep without output for ever.
  STANDIN_EVENTS=N       print a made-up success stream of N events (benchmarks).

Like the real CLIs: `--resume ID` (codex: `exec resume … ID`) keeps session ID; codex reads
a stdin pipe to its end before anything (an open pipe hangs it); claude waits 3 s for a
first byte of a stdin pipe, gemini 500 ms; codex refuses `--full-auto` (0.171), claude
refuses stream-json without `--verbose`.
"""

from __future__ import annotations

import json
import os
import select
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "agent_samples"
# the exit code of each sample (tests/agent_samples/README.md); None: the CLI never ended
# (killed by the capture's timeout), so the stand-in hangs after the output
EXIT_CODES: dict[str, int | None] = {
    "claude-success.jsonl": 0,
    "claude-ratelimit.jsonl": 1,
    "claude-ratelimit-apikey.jsonl": 1,
    "claude-auth.jsonl": 1,
    "claude-auth-notloggedin.jsonl": 1,
    "claude-overloaded.jsonl": 1,
    "claude-overloaded-repeated529.jsonl": 1,
    "claude-maxturns.jsonl": 1,
    "claude-budget.jsonl": 1,
    "claude-permission-denied.jsonl": 0,
    "claude-context.jsonl": 1,
    "claude-network-down.jsonl": 1,
    "claude-resume-notfound.jsonl": 1,
    "claude-resume-notfound.stderr.txt": 1,
    "codex-success.jsonl": 0,
    "codex-ratelimit.jsonl": 1,
    "codex-auth.jsonl": 1,
    "codex-overloaded.jsonl": 1,
    "codex-context.jsonl": 1,
    "codex-ask.jsonl": 0,
    "codex-readonly-denied.jsonl": 0,
    "codex-network-down.jsonl": None,
    "codex-network-down-bounded.jsonl": 1,
    "codex-human-mode-offline.stderr.txt": None,
    "codex-resume-notfound.stderr.txt": 1,
    "codex-full-auto.stderr.txt": 2,
    "gemini-success.jsonl": 0,
    "gemini-success.json": 0,
    "gemini-ratelimit.jsonl": 173,
    "gemini-ratelimit-retryafter.jsonl": 173,
    "gemini-ratelimit.json-mode.stderr.txt": 173,
    "gemini-auth.jsonl": 144,
    "gemini-auth.json-mode.stderr.txt": 144,
    "gemini-auth-notset.json-mode.stderr.txt": 41,
    "gemini-auth-notset.stderr.txt": 41,
    "gemini-overloaded.jsonl": 247,
    "gemini-context.jsonl": 144,
    "gemini-untrusted.stderr.txt": 55,
    "gemini-network-down.jsonl": 1,
    "gemini-network-down.json-mode.stderr.txt": 1,
    "gemini-resume-notfound.stderr.txt": 42,
}
CLIS = ("claude", "codex", "gemini")
# options of `codex exec resume` that take a value (the session id is the first positional)
_CODEX_VALUED = {
    "-c",
    "--config",
    "-m",
    "--model",
    "-i",
    "--image",
    "-o",
    "--output-last-message",
    "--enable",
    "--disable",
    "--remote",
    "--remote-auth-token-env",
    "--output-schema",
    "--thread-source",
    "--cyber-access-program",
}


def main(argv: list[str]) -> int:
    name = Path(argv[0]).name
    args = argv[1:]
    if args[:1] == ["--as"]:
        name, args = args[1], args[2:]
    if name not in CLIS:
        print(f"agent_cli.py: impersonates {', '.join(CLIS)}, not {name!r}", file=sys.stderr)
        return 2
    how, data = _stdin(name)
    _log(name, args, how, data)
    refused = _refusal(name, args)
    if refused is not None:
        return refused
    resume = _resume_id(name, args)
    events = os.environ.get("STANDIN_EVENTS")
    sample = os.environ.get("STANDIN_SAMPLE", f"{name}-success.jsonl")
    if events:
        lines = _made_up(name, int(events), resume)
        code: int | None = 0
        stderr = ""
    elif sample not in EXIT_CODES:
        print(f"agent_cli.py: no sample {sample!r} in {SAMPLES}", file=sys.stderr)
        return 2
    else:
        lines, stderr = _sample_output(sample, resume)
        code = EXIT_CODES[sample]
    if os.environ.get("STANDIN_HANG") == "1":
        _emit(lines[:2], "")
        _hang()
    success = bool(events) or "-success." in sample
    if success and (write := os.environ.get("STANDIN_WRITE")):
        # before the output ends, as a real agent's edit comes before its result event
        target = Path.cwd() / write
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"written by the {name} stand-in\n")
    _emit(lines, stderr)
    if code is None:
        _hang()
    return code or 0


def _stdin(name: str) -> tuple[str, str | None]:
    """How stdin was given (`devnull`, `closed`, `pipe`, `file`, `tty`) and what it held."""
    try:
        st = os.fstat(0)
    except OSError:
        return "closed", None
    if os.isatty(0):
        return "tty", None
    if stat.S_ISCHR(st.st_mode) and os.path.samestat(st, os.stat(os.devnull)):
        return "devnull", None
    how = "pipe" if stat.S_ISFIFO(st.st_mode) else "file"
    if how == "pipe" and name != "codex":
        # claude waits 3 s for a first byte, gemini 500 ms; codex reads to the end regardless
        wait = 3.0 if name == "claude" else 0.5
        ready, _, _ = select.select([0], [], [], wait)
        if not ready:
            if name == "claude":
                print(
                    "Warning: no stdin data received in 3s, proceeding without it.", file=sys.stderr
                )
            return how, None
    return how, sys.stdin.buffer.read().decode("utf-8", "replace")


def _log(name: str, args: list[str], how: str, data: str | None) -> None:
    path = os.environ.get("STANDIN_LOG")
    if not path:
        return
    record = {
        "as": name,
        "argv": args,
        "cwd": os.getcwd(),
        "stdin": how,
        "stdin_data": data,
        "env": {k: os.environ.get(k) for k in ("TZ", "NO_COLOR", "GEMINI_CLI_NO_RELAUNCH")},
    }
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _refusal(name: str, args: list[str]) -> int | None:
    """The real CLI's refusal of arguments the adapters must never build."""
    if name == "codex" and "--full-auto" in args:
        _emit([], _substitute((SAMPLES / "codex-full-auto.stderr.txt").read_text(), False))
        return 2
    if name == "claude" and "stream-json" in args and "--verbose" not in args:
        print(
            "Error: When using --print, --output-format=stream-json requires --verbose",
            file=sys.stderr,
        )
        return 1
    return None


def _resume_id(name: str, args: list[str]) -> str | None:
    if name == "codex":
        if args[:2] != ["exec", "resume"]:
            return None
        rest, skip = args[2:], False
        for arg in rest:
            if skip:
                skip = False
            elif arg in _CODEX_VALUED:
                skip = True
            elif not arg.startswith("-"):
                return arg
        return None
    for i, arg in enumerate(args):
        if arg in ("--resume", "-r") and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--resume="):
            return arg.split("=", 1)[1]
    return None


def _substitute(text: str, in_json: bool) -> str:
    paths = {
        "$REPO": os.getcwd(),
        "$HOME": os.environ.get("HOME", "/nonexistent"),
        "$TMPDIR": tempfile.gettempdir(),
        "$PKG": str(Path(__file__).resolve().parent),
    }
    for placeholder, value in paths.items():
        text = text.replace(placeholder, json.dumps(value)[1:-1] if in_json else value)
    return text


def _sample_output(sample: str, resume: str | None) -> tuple[list[str], str]:
    """The sample's stdout lines and stderr text."""
    path = SAMPLES / sample
    if sample.endswith(".stderr.txt"):
        return [], _substitute(path.read_text(), False)
    lines = _substitute(path.read_text(), True).splitlines(keepends=True)
    if resume:
        lines = [_keep_session(line, resume) for line in lines]
    companion = path.with_name(path.name.rsplit(".", 1)[0] + ".stderr.txt")
    stderr = _substitute(companion.read_text(), False) if companion.exists() else ""
    return lines, stderr


def _keep_session(line: str, session: str) -> str:
    """A resumed CLI keeps the session id: the sample's id becomes the resumed one."""
    try:
        event = json.loads(line)
    except ValueError:
        return line
    if not isinstance(event, dict):
        return line
    if "session_id" in event:
        event["session_id"] = session
    if event.get("type") == "thread.started":
        event["thread_id"] = session
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"


def _made_up(name: str, n: int, resume: str | None) -> list[str]:
    """A success stream of `n` events in the CLI's format (at least its frame)."""
    session = resume or "00000000-0000-4000-8000-000000000000"
    first, step, last = _FRAMES[name](session, n)
    middle = [step(i) for i in range(max(0, n - len(first) - len(last)))]
    return [json.dumps(e) + "\n" for e in (*first, *middle, *last)]


Event = dict[str, object]


def _claude_frame(session: str, n: int) -> tuple[list[Event], Callable[[int], Event], list[Event]]:
    def step(i: int) -> Event:
        return {
            "type": "assistant",
            "session_id": session,
            "parent_tool_use_id": None,
            "message": {
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [{"type": "text", "text": f"step {i}"}],
                "usage": {"input_tokens": 3, "output_tokens": 1},
            },
        }

    first: list[Event] = [
        {
            "type": "system",
            "subtype": "init",
            "session_id": session,
            "model": "claude-sonnet-4-5",
            "permissionMode": "acceptEdits",
        }
    ]
    last: list[Event] = [
        {
            "type": "result",
            "subtype": "success",
            "is_error": False,
            "result": f"done after {n} events",
            "session_id": session,
            "total_cost_usd": 0.01,
            "usage": {
                "input_tokens": 10,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 90,
                "output_tokens": 20,
            },
            "modelUsage": {},
            "permission_denials": [],
        }
    ]
    return first, step, last


def _codex_frame(session: str, n: int) -> tuple[list[Event], Callable[[int], Event], list[Event]]:
    def step(i: int) -> Event:
        return {
            "type": "item.completed",
            "item": {"id": f"item_{i}", "type": "agent_message", "text": f"step {i}"},
        }

    first: list[Event] = [
        {"type": "thread.started", "thread_id": session},
        {"type": "turn.started"},
    ]
    last: list[Event] = [
        {
            "type": "item.completed",
            "item": {"id": "item_last", "type": "agent_message", "text": f"done after {n} events"},
        },
        {
            "type": "turn.completed",
            "usage": {"input_tokens": 100, "cached_input_tokens": 90, "output_tokens": 20},
        },
    ]
    return first, step, last


def _gemini_frame(session: str, n: int) -> tuple[list[Event], Callable[[int], Event], list[Event]]:
    def step(i: int) -> Event:
        if i % 2 == 0:
            return {
                "type": "tool_use",
                "tool_name": "read_file",
                "tool_id": f"t{i}",
                "parameters": {},
            }
        return {"type": "tool_result", "tool_id": f"t{i - 1}", "status": "success"}

    first: list[Event] = [
        {"type": "init", "session_id": session, "model": "gemini-2.5-flash"},
        {"type": "message", "role": "user", "content": "the prompt"},
    ]
    last: list[Event] = [
        {
            "type": "message",
            "role": "assistant",
            "content": f"done after {n} events",
            "delta": True,
        },
        {
            "type": "result",
            "status": "success",
            "stats": {
                "total_tokens": 120,
                "input_tokens": 100,
                "output_tokens": 20,
                "cached": 90,
                "input": 10,
            },
        },
    ]
    return first, step, last


_FRAMES = {"claude": _claude_frame, "codex": _codex_frame, "gemini": _gemini_frame}


def _emit(lines: list[str], stderr: str) -> None:
    out = sys.stdout
    for line in lines:
        out.write(line)
        out.flush()  # the real CLIs flush per event
    if stderr:
        sys.stderr.write(stderr)
        sys.stderr.flush()


def _hang() -> None:
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
