"""The texts `git freq init --analyse` writes, and the choices behind them, from Findings.

Must not import click, dulwich, subprocess or pexpect; pure text work, no I/O. The YAML is
written as text, not dumped, so that each choice keeps the comment that explains it; every
value taken from the repository is quoted (a JSON string is a YAML double-quoted scalar).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

from freq.analyse import Findings

AGENT_RETRY = "{max_attempts: 3, backoff: {initial: 30s, factor: 2, max: 5m, jitter: 0.2}}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Choice:
    """One decision of the analysis: what went where, and why."""

    what: str  # setup, lint, test, build, check, implement, review, merge
    value: str
    why: str


# ---------------------------------------------------------------- what was chosen, and why


def _commands(findings: Findings, role: str) -> list[str]:
    out = []
    for comp, cmd in findings.commands(role):
        where = f" in {comp.path}/" if comp is not None and comp.path else ""
        via = " (from CI: nothing else gave one)" if comp is None else ""
        out.append(f"{cmd.run}{where}: {cmd.source}{via}")
    return out


def choices(findings: Findings, branch: str) -> Iterator[Choice]:
    """Every decision behind the generated configuration, with its reason."""
    if findings.setup:
        changed = ", ".join(findings.when_changed) or "(every time)"
        sources = "; ".join(c.install.source for c in findings.components if c.install)
        yield Choice(
            what="setup",
            value=findings.setup,
            why=f"the project's own install ({sources}), run in each worktree before a "
            f"step, again only when {changed} changed",
        )
    for role in ("lint", "test", "build"):
        for line in _commands(findings, role):
            run, _, why = line.partition(": ")
            yield Choice(what=role, value=run, why=why)
    check = findings.check("lint", "test", "build")
    if check:
        roles = [r for r in ("lint", "test", "build") if findings.commands(r)]
        named = " and ".join([", ".join(roles[:-1]), roles[-1]] if len(roles) > 1 else roles)
        yield Choice(
            what="check",
            value=check,
            why=f"{named} run{'s' if len(roles) == 1 else ''} on the combined tree before "
            f"anything lands on {branch}, so a change that fails never reaches it",
        )
    impl, rev = _agents(findings)
    if impl:
        yield Choice(what="implement", value=impl, why=f"agent CLI {impl!r} found on PATH")
        why = (
            f"a different agent CLI ({rev}) reads the first one's work"
            if rev != impl
            else "the only agent CLI found: a second CLI on PATH would review with another model"
        )
        yield Choice(what="review", value=rev or impl, why=why)
    else:
        yield Choice(
            what="implement",
            value="gate",
            why="no agent CLI (claude, codex, gemini) on PATH: a person does the work and "
            "approves; the agent form is there as a comment",
        )
    yield Choice(
        what="merge",
        value=f"into {branch}",
        why="the default branch; work lands through its merge queue (rebase, retried on a "
        "conflict)",
    )


def _agents(findings: Findings) -> tuple[str | None, str | None]:
    """(implementer CLI, reviewer CLI): the first found, and the next one (or the same)."""
    if not findings.agents:
        return None, None
    first = findings.agents[0]
    return first, (findings.agents[1] if len(findings.agents) > 1 else first)


# ---------------------------------------------------------------- the texts


# Characters a YAML stream may not hold raw (PyYAML's reader refuses them), or that YAML
# reads as line breaks inside a double-quoted scalar (which would fold the value)
_RAW_UNSAFE = re.compile(
    "[^\t\n\r\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def _q(text: str) -> str:
    """A YAML double-quoted scalar (a JSON string is one), with every character YAML would
    refuse or fold escaped (`\\u001b`); a lone surrogate becomes U+FFFD."""

    def escape(m: re.Match[str]) -> str:
        code = ord(m.group())
        return "\\ufffd" if 0xD800 <= code <= 0xDFFF else f"\\u{code:04x}"

    return _RAW_UNSAFE.sub(escape, json.dumps(text, ensure_ascii=False))


def _plain(text: str) -> str:
    """`text` as a plain YAML scalar when it is safely one (a usual branch name), else quoted."""
    return text if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_./-]*", text) else _q(text)


def _braces(text: str) -> str:
    """`text` inside a prompt template: braces doubled, so that only placeholders expand."""
    return text.replace("{", "{{").replace("}", "}}")


def settings_text(findings: Findings) -> str:
    """frequency.yaml: caps, lease, defaults, and the two named agents."""
    impl, rev = _agents(findings)
    lines = [
        "# Frequency settings, written by `git freq init --analyse` (reference: docs/config.md).",
        "# Global cap on steps running at once, across every worker process.",
        "max_parallel: 4",
        "# Claims on running steps are leases renewed every ttl/3.",
        "lease: {ttl: 60s}",
        "# Agent steps run in pooled git worktrees (docs/worktrees.md).",
        "worktrees: {max: 4}",
        "defaults:",
        "  timeout: 30m",
        "  retry:",
        "    max_attempts: 3",
        "    backoff: {initial: 15s, factor: 2, max: 90s, jitter: 0.2}",
    ]
    if impl is None:
        lines += [
            "# No agent CLI (claude, codex, gemini) was found on PATH. Install one, log in, and",
            "# uncomment (then give .frequency/build.yaml's steps their `agent:`):",
            "# agents:",
            "#   implementer: {use: claude}   # Claude Code",
            "#   reviewer: {use: codex}       # Codex: a different model reviews",
        ]
        return "\n".join(lines) + "\n"
    lines += [
        f"# The agents of the build factory, found on PATH: {', '.join(findings.agents)}.",
        "# A review by another CLI than the implementation's reads the work with another model.",
        "agents:",
        "  implementer:",
        f"    use: {impl}",
        "    # model: ...            # the CLI's default model unless set",
    ]
    if impl == "claude":
        tools = [
            f"Bash({cmd.run}:*)"
            for role in ("lint", "test", "build")
            for comp, cmd in findings.commands(role)
            if (comp is None or not comp.path) and "&&" not in cmd.run and "|" not in cmd.run
        ]
        if tools:
            lines.append("    # the project's own checks, which Claude Code may run unasked")
            lines.append(f"    allowed_tools: [{', '.join(_q(t) for t in tools)}]")
    lines += ["  reviewer:", f"    use: {rev}"]
    if rev == impl:
        lines.append("    # the same CLI as the implementer: install another (codex, gemini) for a")
        lines.append("    # review by a different model, and name it here")
    return "\n".join(lines) + "\n"


_GLOB_QUOTES = {"*": "[*]", "?": "[?]", "[": "[[]"}


def literal_glob(path: str, *, template: bool = False) -> str:
    """`path` as a glob that names just it: `*`, `?` and `[` as one-character classes (a
    folder named `a*b`); as a `touches:` `template`, braces doubled too (`{` is a field)."""
    quotes = {**_GLOB_QUOTES, "{": "{{", "}": "}}"} if template else _GLOB_QUOTES
    return "".join(quotes.get(ch, ch) for ch in path)


def _step_common(findings: Findings, branch: str, *, commented: bool) -> list[str]:
    """setup, touches, merge (with the check) of a worktree step, as YAML lines."""
    c = "# " if commented else ""
    lines = []
    if findings.setup:
        lines.append(
            "    # the project's install, in the worktree"
            + (
                f"; again only when {', '.join(findings.when_changed)} changed"
                if findings.when_changed
                else ""
            )
        )
        if findings.when_changed:
            globs = ", ".join(_q(literal_glob(g)) for g in findings.when_changed)
            lines.append(f"    {c}setup: {{run: {_q(findings.setup)}, when_changed: [{globs}]}}")
        else:
            lines.append(f"    {c}setup: {_q(findings.setup)}")
    dirs = [comp.path for comp in findings.components if comp.path]
    example = (
        ", ".join(_q(f"{literal_glob(d, template=True)}/**") for d in dirs) if dirs else '"src/**"'
    )
    lines.append(
        "    # touches: ["
        + example
        + "]   # paths it edits: overlapping attempts never run together"
    )
    check = findings.check("lint", "test", "build")
    lines += [
        f"    {c}merge:",
        f"    {c}  into: {_plain(branch)}",
        f"    {c}  strategy: rebase",
        f"    {c}  on_conflict: retry",
    ]
    why = "the project's lint, test and build, on the combined tree before it lands"
    if check:
        lines += [f"    {c}  # {why}", f"    {c}  check: {_q(check)}"]
    else:
        lines += [
            f"    {c}  # no lint, test or build command was found; name one to run before landing:",
            f"    {c}  # check: make test",
        ]
    return lines


def build_text(findings: Findings, branch: str) -> str:
    """build.yaml: implement (an agent), review (another agent), through the merge queue."""
    impl, _ = _agents(findings)
    head = ["# Written by `git freq init --analyse` from this repository's build files."]
    for choice in choices(findings, branch):
        head.append(f"#   {choice.what}: {choice.value}")
        head.append(f"#     why: {choice.why}")
    if findings.ci_commands:
        head.append("# Commands the CI runs (evidence; compare them with the check below):")
        head += [f"#   {c.run}    ({c.source})" for c in findings.ci_commands[:12]]
    head += [f"# note: {n}" for n in findings.notes]
    head += [
        "#",
        "# Add a subject (a unit of work):  git freq add build my-change --data task='what to do'",
        "# Run until nothing is left:       git freq run --until-idle",
        "# What happened, in plain git:     git log --glob=refs/frequency",
    ]
    checks = findings.check("lint", "test")
    ask = "If you need a decision from a person, end with a line of its own: freq:ask QUESTION"
    lines = [
        *head,
        "factory_id: build",
        "description: "
        + _q(
            f"Implement, then review by another agent; lands on {branch} through the merge queue."
        ),
        "state:",
        "  initial: selected",
        "  terminal: [done, failed]",
        "steps:",
        "  - id: implement",
        "    from_states: [selected]",
        "    to_state: implemented",
    ]
    impl_prompt = [
        "Implement {subject} in this repository: {data.task}",
        "",
        "Keep to what the task needs, with tests for what you add."
        + (f" Before you finish, run the project's checks: {_braces(checks)}" if checks else ""),
        ask,
        "",
        "{last_error}",
        "{diagnosis}",
    ]
    rev_prompt = [
        "Review the change made for {subject} (the task: {data.task}): the newest commits of",
        "this branch (git log --oneline -10; git show). Check that it does what was asked, that",
        "it has tests" + (f" and that {_braces(checks)} passes" if checks else "") + ".",
        "Fix what is wrong yourself, in small edits, and leave them uncommitted: they are",
        "committed and land for you.",
        ask,
        "",
        "{last_error}",
    ]
    if impl is None:
        lines += [
            "    # No agent CLI was found: this step is a gate. A person does the work and runs",
            "    # `git freq approve build SUBJECT implement`. With an agent (frequency.yaml):",
            '    # agent: {use: implementer, prompt: "Implement {subject}: {data.task}"}',
            *_step_common(findings, branch, commented=True),
            "  - id: review",
            "    from_states: [implemented]",
            "    to_state: reviewed",
            "    # a gate too: with a second agent,",
            '    # agent: {use: reviewer, prompt: "Review the change made for {subject}"}',
        ]
        final_from = "reviewed"
        check = findings.check("lint", "test", "build")
        if check:
            lines += [
                "  - id: validate",
                f"    from_states: [{final_from}]",
                "    to_state: done",
                "    # the project's lint, test and build, in your checkout (no agent)",
                f"    run: {_q(check)}",
                "    timeout: 30m",
                "    on_terminal: failed",
            ]
        else:
            lines += [
                "  - id: finish",
                f"    from_states: [{final_from}]",
                "    to_state: done",
                "    # a gate: approve to finish. No lint, test or build command was found; a",
                "    # deterministic step would run one:",
                "    # run: make test",
            ]
        return "\n".join(lines) + "\n"
    verify = findings.check("test")
    lines += [
        "    agent:",
        "      use: implementer",
        "      prompt: |",
        *[f"        {p}".rstrip() for p in impl_prompt],
    ]
    if verify:
        lines.append(
            "    # run where the agent worked, once it is done: a failure is the next "
            "attempt's {last_error}"
        )
        lines.append(f"    verify: {_q(verify)}")
    lines += [
        *_step_common(findings, branch, commented=False),
        "    timeout: 40m",
        "    # agents fail for passing reasons (load, rate limits): a longer backoff",
        f"    retry: {AGENT_RETRY}",
        "    on_terminal: failed",
        "  - id: review",
        "    from_states: [implemented]",
        "    to_state: done",
        "    agent:",
        "      use: reviewer",
        "      prompt: |",
        *[f"        {p}".rstrip() for p in rev_prompt],
        *_step_common(findings, branch, commented=False),
        "    timeout: 20m",
        f"    retry: {AGENT_RETRY}",
        "    on_terminal: failed",
    ]
    return "\n".join(lines) + "\n"
