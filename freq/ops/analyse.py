"""`git freq init --analyse`: read a repository's build files, write `.frequency/` from them.

Must not import click, dulwich, subprocess or pexpect, and never prints. The analysis is
pure (freq.analyse, freq.buildfiles) and so are the texts (freq.ops.scaffold); this module
reads the files they need, looks for agent CLIs on PATH, asks git for the default branch,
validates the texts with the pipeline every configuration goes through before writing them,
and with `--agent` has an agent CLI refine them (kept only if they still validate).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from freq.analyse import AGENT_CLIS, MANIFESTS, SKIP_DIRS, analyse
from freq.config import check_not_a_file, load_config_files
from freq.errors import FreqError, Hint
from freq.ops.app import App
from freq.ops.scaffold import Choice, build_text, choices, settings_text

MAX_FILE = 1 << 20  # a build file larger than this is not read (its presence still counts)
# files whose presence says enough (a lock file names its package manager)
_PRESENCE_ONLY = frozenset(
    {"package-lock.json", "pnpm-lock.yaml", "yarn.lock", "bun.lockb", "bun.lock", "uv.lock",
     "poetry.lock", "pdm.lock", "Cargo.lock", "go.sum", "Gemfile.lock", "mvnw", "gradlew"}
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalyseResult:
    """What `init --analyse` found, chose and wrote."""

    written: tuple[str, ...]
    found: tuple[str, ...]  # `frontend/: node` lines
    choices: tuple[Choice, ...]
    ci_commands: tuple[str, ...]
    agents: tuple[str, ...]
    branch: str
    notes: tuple[str, ...]
    refined_by: str | None = None  # the agent whose edit of the files was kept


REFINE_TIMEOUT = 10 * 60.0  # seconds, for `--agent`
REFINE_PROMPT = """\
The files .frequency/frequency.yaml and .frequency/build.yaml of this repository were just
written by `git freq init --analyse` (Frequency, a git-native orchestrator of agent and
shell steps) from the repository's build files. Their comments say what was found and why
each choice was made.

Read the repository (its README, build files, CI workflows and scripts) and improve the two
files where the analysis was wrong or incomplete: the install command in `setup` and its
`when_changed` lock files, the lint, test and build commands in `verify` and `merge.check`,
the two agent prompts (say what this project is and how its code is laid out), and a
`touches:` glob list fitting its layout. Keep factory_id `build`, its states and step ids,
the agents' names, and YAML comments that say why. Edit only files under .frequency/; do
not commit, and run nothing that changes files outside .frequency/.
"""


def init_analysed(app: App, *, force: bool = False, agent: str | None = None) -> AnalyseResult:
    """Analyse the repository's build files and write `.frequency/` (frequency.yaml and a
    `build` factory); refuses when `.frequency/` has configuration already, unless `force`.

    With `agent` (claude, codex or gemini), that agent CLI then refines the files in place;
    its edit is kept only if the configuration still validates, else the analysis's files
    are put back and a note says why."""
    if agent is not None and agent not in AGENT_CLIS:
        known = ", ".join(AGENT_CLIS)
        raise FreqError(f"the agent that refines must be an agent CLI: {known} (not {agent!r})")
    root = app.root
    folder = root / ".frequency"
    check_not_a_file(folder)
    existing = sorted(p.name for p in folder.glob("*.y*ml")) if folder.is_dir() else []
    if existing and not force:
        raise FreqError(
            f".frequency/ already holds {', '.join(existing)}; nothing was written",
            hint=Hint(text="overwrite frequency.yaml and build.yaml: pass", option="force"),
        )
    from freq import configfiles, merges

    findings = analyse(
        dict(_read_build_files(root)),
        agents=[a for a in AGENT_CLIS if shutil.which(a)],
        parse_yaml=configfiles.parse_yaml,
    )
    branch = merges.default_branch(root)
    texts = {"frequency.yaml": settings_text(findings), "build.yaml": build_text(findings, branch)}
    load_config_files({n: t.encode() for n, t in texts.items()}, root=root)  # never write bad
    folder.mkdir(exist_ok=True)
    for name, text in texts.items():
        (folder / name).write_text(text)
    notes = list(findings.notes)
    refined = _refine(app, agent, texts, notes) if agent is not None else False
    return AnalyseResult(
        written=tuple(f".frequency/{n}" for n in texts),
        found=tuple(f"{c.path or '.'}/: {', '.join(c.kinds)}" for c in findings.components),
        choices=tuple(choices(findings, branch)),
        ci_commands=tuple(f"{c.source}: {c.run}" for c in findings.ci_commands),
        agents=findings.agents,
        branch=branch,
        notes=tuple(notes),
        refined_by=agent if refined else None,
    )


def _refine(app: App, agent: str, texts: dict[str, str], notes: list[str]) -> bool:
    """Run `agent` on the written files; keep its edit if the configuration validates,
    else write `texts` back. Returns whether the edit was kept; says why in `notes`."""
    from freq.config import load_config
    from freq.errors import ConfigError
    from freq.model import AgentCall, Step, resolve_agent
    from freq.runners import StepRequest
    from freq.runners.agent import AgentRunner

    root = app.root
    folder = root / ".frequency"
    call = AgentCall(use=agent, prompt=REFINE_PROMPT)
    step = Step(id="refine", from_states=("analysed",), to_state="analysed", agent=call)
    log = app.store.state_dir / "logs" / "init" / f"refine-{agent}.log"
    result = AgentRunner(app.clock).run(
        StepRequest(
            step=step,
            cwd=root,
            env={"FREQ_REPO": str(root), "FREQ_WORKDIR": str(root)},
            timeout=REFINE_TIMEOUT,
            log_path=log,
            agent=resolve_agent(call, {}),
            prompt=REFINE_PROMPT,
        ),
        _Foreground(),
    )
    if not result.ok:
        why = result.hint.reason if result.hint else result.how
        notes.append(f"the {agent} agent failed ({why}); kept the analysis's files (log: {log})")
        _restore(folder, texts)
        return False
    try:
        load_config(root)
    except ConfigError as exc:
        detail = f": {exc.problems[0]}" if exc.problems else ""
        notes.append(
            f"the {agent} agent's edit did not validate "
            f"({len(exc.problems)} problem{'s' if len(exc.problems) != 1 else ''}{detail}); "
            "kept the analysis's files"
        )
        _restore(folder, texts)
        return False
    except FreqError as exc:
        notes.append(
            f"the {agent} agent's edit could not be read ({exc}); kept the analysis's files"
        )
        _restore(folder, texts)
        return False
    changed = [n for n, t in texts.items() if (folder / n).read_text() != t]
    notes.append(
        f"the {agent} agent refined {', '.join(changed)}; it validates"
        if changed
        else f"the {agent} agent changed neither file"
    )
    return bool(changed)


def _restore(folder: Path, texts: dict[str, str]) -> None:
    for name, text in texts.items():
        (folder / name).write_text(text)


class _Foreground:
    """The attempt a foreground agent run sees: it goes on until it ends (Ctrl-C stops it
    through the process funnel), as `dlq diagnose`'s does."""

    def go_on(self) -> bool:
        return True

    def cancelled(self) -> bool:
        return False


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    """The entries of `folder` by name; none when it is missing or cannot be read."""
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError:
        return []


def _read_build_files(root: Path) -> Iterator[tuple[str, str]]:
    """(path, text) of every build file in the root and its first-level folders, and of the
    CI files; presence-only files as "", unreadable or binary files left out."""
    wanted: list[tuple[str, Path]] = []
    for entry in _entries(root):
        if entry.is_file() and entry.name in MANIFESTS:
            wanted.append((entry.name, Path(entry.path)))
        elif entry.is_dir(follow_symlinks=False) and not (
            entry.name.startswith(".") or entry.name in SKIP_DIRS
        ):
            wanted += [
                (f"{entry.name}/{sub.name}", Path(sub.path))
                for sub in _entries(Path(entry.path))
                if sub.is_file() and sub.name in MANIFESTS
            ]
    wanted += [
        (f".github/workflows/{e.name}", Path(e.path))
        for e in _entries(root / ".github" / "workflows")
        if e.name.endswith((".yml", ".yaml")) and e.is_file()
    ]
    if (root / ".gitlab-ci.yml").is_file():
        wanted.append((".gitlab-ci.yml", root / ".gitlab-ci.yml"))
    for rel, path in wanted:
        if path.name in _PRESENCE_ONLY:
            yield rel, ""
            continue
        try:
            if path.stat().st_size > MAX_FILE:
                continue
            yield rel, path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue


__all__ = ["AnalyseResult", "init_analysed"]
