"""What `git freq init --analyse` finds in a repository's own build files: pure, no I/O.

Must not import dulwich, click, subprocess, yaml or any outside system, nor read files or the
environment: the ops layer (freq/ops/analyse.py) reads the files and passes their texts in,
with the agent CLIs it found on PATH and a YAML parser (freq.configfiles owns yaml), and
renders the Findings as `.frequency/` text.

A *component* is one directory with build files (the root, or a first-level folder such as
`frontend/`); each gives commands for four roles (install, lint, test, build), each command
with the file and field it came from, so the summary can say why it was chosen. A Makefile's
targets win over the language's conventions in the same directory (it is the project's own
entry point); CI workflows are evidence, used only for a role nothing else fills. What each
build system's files say is in freq.buildfiles.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from freq.buildfiles import READERS, ROLES, Command, Part, read_json

# The agent CLIs `init --analyse` looks for, in the order it prefers them as implementer;
# the reviewer is the next one found, so that a second model reads the first one's work.
AGENT_CLIS = ("claude", "codex", "gemini")

# Folders never scanned for components (dependencies, build output, environments).
SKIP_DIRS = frozenset(
    {"node_modules", "vendor", "target", "dist", "build", "venv", ".venv", "__pycache__"}
)

# The file names read in the root and in each first-level folder.
MANIFESTS = frozenset(
    {
        "package.json", "package-lock.json", "pnpm-lock.yaml", "yarn.lock", "bun.lockb",
        "bun.lock", "pnpm-workspace.yaml", ".yarnrc.yml", "pyproject.toml", "uv.lock",
        "poetry.lock", "pdm.lock", "requirements.txt", "requirements-dev.txt", "tox.ini",
        "noxfile.py", "Makefile", "makefile", "GNUmakefile", "Cargo.toml", "Cargo.lock",
        "go.mod", "go.sum", "Gemfile", "Gemfile.lock", "Rakefile", "pom.xml", "mvnw",
        "build.gradle", "build.gradle.kts", "gradlew", "Dockerfile", ".gitignore",
    }
)  # fmt: skip


MAX_CI_COMMANDS = 40

ParseYaml = Callable[[str], Any]

# What YAML (and a terminal) takes as one line of text: printable, no line breaks. A CI line
# or a folder name is the repository's text, and may hold anything (an escape sequence, a
# U+2028 that YAML reads as a new line, a lone surrogate from a JSON escape).
_INVISIBLE = re.compile("[^\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def visible(text: str) -> str:
    """`text` with every character that is not printable on one line replaced by `?`."""
    return _INVISIBLE.sub("?", text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Component:
    """One directory with build files, and the commands found for each role."""

    path: str  # "" for the repository root, else a folder such as "frontend"
    kinds: tuple[str, ...]  # node, python, rust, go, ruby, maven, gradle, docker, make
    install: Command | None = None
    lock_files: tuple[str, ...] = ()  # paths relative to the component
    lint: tuple[Command, ...] = ()
    test: tuple[Command, ...] = ()
    build: tuple[Command, ...] = ()
    deps_dir: str | None = None  # what `install` creates (node_modules, .venv), if anything

    def where(self, rel: str) -> str:
        """`rel` as a path from the repository root."""
        return f"{self.path}/{rel}" if self.path else rel


@dataclass(frozen=True, slots=True, kw_only=True)
class Findings:
    """Everything the analysis found, and notes for the summary."""

    components: tuple[Component, ...] = ()
    ci_commands: tuple[Command, ...] = ()  # `run:` / `script:` lines of CI, as evidence
    agents: tuple[str, ...] = ()  # agent CLIs found on PATH, in AGENT_CLIS order
    notes: tuple[str, ...] = ()
    fallback: Mapping[str, Command] = field(default_factory=dict)  # role -> from CI

    @property
    def setup(self) -> str | None:
        """The install commands of every component, as one command from the root."""
        return _combine([(c.path, c.install.run) for c in self.components if c.install is not None])

    @property
    def when_changed(self) -> tuple[str, ...]:
        """The lock files (or manifests) whose change means installing again."""
        return tuple(c.where(f) for c in self.components if c.install for f in c.lock_files)

    def commands(self, role: str) -> tuple[tuple[Component | None, Command], ...]:
        """Every command found for `role` (lint, test, build), from the CI when none is."""
        found = tuple((c, cmd) for c in self.components for cmd in getattr(c, role))
        if not found and role in self.fallback:
            return ((None, self.fallback[role]),)
        return found

    def check(self, *roles: str) -> str | None:
        """The commands of `roles` (in order) as one command from the root."""
        by_dir: dict[str, list[str]] = {}  # one group per folder, in component order
        for role in roles:
            for comp, cmd in self.commands(role):
                by_dir.setdefault(comp.path if comp else "", []).append(cmd.run)
        return _combine([(d, " && ".join(cmds)) for d, cmds in by_dir.items()])


def in_dir(path: str, command: str) -> str:
    """`command` run in `path` (a folder of the repository), from the root."""
    return f"cd {_quote(path)} && {command}" if path else command


def _combine(parts: list[tuple[str, str]]) -> str | None:
    """Commands (each in its folder) as one: alone as they are, together with `&&`, a
    command in a sub-folder in a subshell so the next one starts from the root again."""
    if not parts:
        return None
    if len(parts) == 1:
        return in_dir(*parts[0])
    return " && ".join(f"({in_dir(p, c)})" if p else c for p, c in parts)


def _quote(path: str) -> str:
    return path if re.fullmatch(r"[A-Za-z0-9_./-]+", path) else shlex.quote(path)


# ---------------------------------------------------------------- the analysis


def analyse(
    files: Mapping[str, str], *, agents: Iterable[str] = (), parse_yaml: ParseYaml
) -> Findings:
    """Findings from `files` ({path from the root: text}; a binary file's text may be ""),
    the agent CLIs found on PATH, and `parse_yaml` (text -> data; raises ValueError with a
    one-line reason) for CI files."""
    notes: list[str] = []
    by_dir: dict[str, dict[str, str]] = {}
    for path, text in files.items():
        folder, _, name = path.rpartition("/")
        if name not in MANIFESTS or folder.count("/") or _skipped(folder):
            continue
        if visible(folder) != folder:
            notes.append(f"{visible(path)}: a folder name with unprintable characters; skipped")
            continue
        by_dir.setdefault(folder, {})[name] = text
    workspace = _node_workspace(by_dir.get("", {}))
    components = []
    for folder in sorted(by_dir, key=lambda d: (d != "", d)):
        here = by_dir[folder]
        if folder and workspace and "package.json" in here and set(here) <= {"package.json"}:
            notes.append(f"{folder}/package.json: a workspace member; run from the root")
            continue
        comp = _component(folder, here, notes)
        if comp is not None:
            components.append(comp)
    ci = list(_ci_commands(files, parse_yaml, notes))
    fallback = {}
    for role, rx in _CI_ROLES.items():
        if not any(getattr(c, role) for c in components):
            pick = next((c for c in ci if rx.search(c.run) and "${{" not in c.run), None)
            if pick is not None:
                fallback[role] = pick
    for comp in components:
        if comp.deps_dir and not _ignored(by_dir.get(comp.path, {}), by_dir.get("", {}), comp):
            notes.append(
                f"{comp.where(comp.deps_dir)}/ is not in .gitignore: add it, or what setup "
                "installs in a worktree is committed with the step's work"
            )
    found = tuple(a for a in AGENT_CLIS if a in set(agents))
    return Findings(
        components=tuple(components),
        ci_commands=tuple(ci[:MAX_CI_COMMANDS]),
        agents=found,
        notes=tuple(visible(n) for n in notes),
        fallback=fallback,
    )


def _skipped(folder: str) -> bool:
    return folder.startswith(".") or folder in SKIP_DIRS


def _ignored(here: Mapping[str, str], root: Mapping[str, str], comp: Component) -> bool:
    """Whether a .gitignore (the component's or the root's) names its deps folder."""
    name = comp.deps_dir or ""
    for text in (here.get(".gitignore", ""), root.get(".gitignore", "")):
        for line in text.splitlines():
            entry = line.strip().strip("/").removeprefix("**/")
            if entry in (name, f"{name}/", comp.where(name)) or entry == f"{name}*":
                return True
    return False


def _node_workspace(root: Mapping[str, str]) -> bool:
    if "pnpm-workspace.yaml" in root:
        return True
    doc = read_json(root.get("package.json"))
    return isinstance(doc, dict) and bool(doc.get("workspaces"))


def _component(folder: str, files: Mapping[str, str], notes: list[str]) -> Component | None:
    """The component in `folder`, or None when its files name no build system."""
    where = (folder + "/") if folder else ""
    parts: list[Part] = []
    for reader in READERS:
        part = reader(files, where, notes)
        if part is not None:
            parts.append(part)
    if not parts:
        return None
    make = next((p for p in parts if p.kind == "make"), None)
    others = [p for p in parts if p.kind != "make"]
    made: dict[str, list[Command]] = dict(make.roles) if make is not None else {}
    # `make install` usually installs system-wide; beside a Python or JS manifest it is the
    # project's own set-up (this repository's Makefile is one such), and wins as the others do
    python_or_node = any(p.kind in ("python", "node") for p in others)
    if make and "install" not in made and "install" in make.targets and python_or_node:
        made["install"] = [Command(run="make install", source=f"{where}Makefile target install")]
    roles: dict[str, list[Command]] = {r: [] for r in ROLES}
    for role in ROLES:
        if made.get(role):
            roles[role] = list(made[role])
            continue
        for p in others:
            if role == "build" and p.kind == "docker" and roles["build"]:
                continue  # a Dockerfile builds only what nothing else builds
            roles[role] += p.roles.get(role, [])
    if not any(roles.values()):
        return None
    install = None
    if roles["install"]:
        run = " && ".join(c.run for c in roles["install"])
        install = Command(run=run, source=", ".join(c.source for c in roles["install"]))
    owner = next((p for p in others if p.roles.get("install")), None)
    return Component(
        path=folder,
        kinds=tuple(p.kind for p in parts),
        install=install,
        lock_files=tuple(f for p in others for f in p.locks) if install else (),
        lint=tuple(roles["lint"]),
        test=tuple(roles["test"]),
        build=tuple(roles["build"]),
        deps_dir=owner.deps_dir if owner is not None and install else None,
    )


# ---------------------------------------------------------------- CI, as evidence


_CI_ROLES = {
    "lint": re.compile(r"\b(lint|ruff|eslint|clippy|vet|rubocop|flake8)\b"),
    "test": re.compile(r"\b(test|tests|pytest|rspec|tox|nox)\b"),
    "build": re.compile(r"\bbuild\b"),
}


def _ci_commands(files: Mapping[str, str], parse: ParseYaml, notes: list[str]) -> Iterator[Command]:
    """Each `run:` line of the GitHub workflows and each `script:` line of .gitlab-ci.yml."""
    for path in sorted(files):
        github = path.startswith(".github/workflows/") and path.endswith((".yml", ".yaml"))
        if not (github or path == ".gitlab-ci.yml") or visible(path) != path:
            continue
        try:
            doc = parse(files[path])
        except ValueError as exc:
            notes.append(f"{path}: not read ({exc})")
            continue
        if not isinstance(doc, dict):
            notes.append(f"{path}: not a mapping; skipped")
            continue
        found = _github_runs(doc) if github else _gitlab_scripts(doc)
        hidden = 0
        for text in found:
            for raw in text.splitlines():
                line = raw.strip()
                if visible(line) != line:
                    hidden += 1  # never a command, nor shown: it could be anything
                elif line and not line.startswith("#"):
                    yield Command(run=line, source=path)
        if hidden:
            notes.append(f"{path}: {hidden} line(s) with unprintable characters left out")


def _github_runs(doc: Mapping[Any, Any]) -> Iterator[str]:
    jobs = doc.get("jobs")
    for job in jobs.values() if isinstance(jobs, dict) else ():
        steps = job.get("steps") if isinstance(job, dict) else None
        for step in steps if isinstance(steps, list) else ():
            if isinstance(step, dict) and isinstance(step.get("run"), str):
                yield step["run"]


def _gitlab_scripts(doc: Mapping[Any, Any]) -> Iterator[str]:
    for job in doc.values():
        if not isinstance(job, dict):
            continue
        for key in ("before_script", "script"):
            value = job.get(key)
            items = value if isinstance(value, list) else [value]
            yield from (i for i in items if isinstance(i, str))
