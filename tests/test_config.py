"""Configuration: YAML → schema → model → semantic checks, with file and line (no git needed)."""

from __future__ import annotations

import json
import re
import shutil
import textwrap
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from freq import layout, schemas
from freq.build import build_factory, build_settings
from freq.checks import dead_ends
from freq.config import expand_config, find_config_files, load_config
from freq.errors import ConfigError, NoConfig
from freq.model import (
    AgentCall,
    AllOf,
    AnyOf,
    Autonomy,
    Backoff,
    Batch,
    Budget,
    Capacity,
    Changed,
    ClassifyRule,
    Command,
    Discover,
    DurationTooLong,
    Emits,
    Factory,
    FailureKind,
    FailureMode,
    Isolation,
    Limits,
    LockSpec,
    Merge,
    MergeStrategy,
    Not,
    OnConflict,
    Price,
    RetryPolicy,
    Settings,
    Setup,
    Step,
    SubjectState,
    Window,
    parse_duration,
)

REPO = Path(__file__).resolve().parent.parent
CASES = sorted((Path(__file__).parent / "cases" / "config").glob("*.yaml"))

SEED = """
factory_id: build
state:
  initial: selected
  terminal: [promoted, failed]
steps:
  - id: implement
    from_states: [selected]
    to_state: implemented
"""


def project(root: Path, files: dict[str, str]) -> Path:
    """Write `.frequency/NAME` files (dedented) under `root` and return `root`."""
    folder = root / ".frequency"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text).lstrip("\n"))
    return root


def problems_of(root: Path) -> list[str]:
    """The problem lines load_config refuses `root` with."""
    with pytest.raises(ConfigError) as info:
        load_config(root)
    return [str(p) for p in info.value.problems]


def factory_with(tmp_path: Path, extra: str) -> Factory:
    """The seed factory with `extra` (YAML lines) appended to its only step."""
    step = textwrap.indent(textwrap.dedent(extra).strip("\n"), "    ")
    root = project(tmp_path, {"build.yaml": SEED.lstrip("\n") + step + "\n"})
    return load_config(root).factories[0]


# ---------------------------------------------------------------- loading


def test_seed_loads_unchanged(tmp_path: Path) -> None:
    """The seed's minimal factory loads as is, into exactly the expected model."""
    config = load_config(project(tmp_path, {"build.yaml": SEED}))
    assert config.root == str(tmp_path.resolve())
    assert config.settings == Settings()
    assert config.factories == (
        Factory(
            factory_id="build",
            path=".frequency/build.yaml",
            initial="selected",
            terminal=("promoted", "failed"),
            steps=(
                Step(id="implement", from_states=("selected",), to_state="implemented", line=6),
            ),
        ),
    )
    assert config.factories[0].steps[0].is_gate


def test_dead_ends_are_notes_not_problems(tmp_path: Path) -> None:
    """A non-terminal state no step leaves is reported by dead_ends(), not refused."""
    config = load_config(project(tmp_path, {"build.yaml": SEED}))
    assert dead_ends(config.factories[0]) == ("implemented",)


FULL = """
factory_id: build
description: Build an app, from selection to promotion.
state:
  initial: selected
  terminal: [promoted, failed]
subjects:
  discover:
    - glob: "apps/*/"
    - command: ./list-apps
limits:
  max_parallel: 3
  wip: {implemented: 5}
poll_interval: 10s
autonomy: supervised
steps:
  - id: implement
    from_states: [selected, needs_changes]
    to_state: implemented
    agent: {use: claude_code, prompt: "Implement {subject} ({data.KEY})", model: opus, args: [-v]}
    setup: make deps
    merge: {into: main, strategy: squash, on_conflict: agent}
    timeout: 40m
    max_parallel: 2
    locks: [{name: "branch:main", ttl: 10m}, "deploy"]
    retry: {max_attempts: 3, backoff: {initial: 15s, factor: 2, max: 90s, jitter: 0.2}}
    failure: infer
    classify:
      - {match: "rate limit", as: quota}
      - {exit: 42, as: needs_human}
      - {match: "denied", exit: 1, as: terminal}
    on_terminal: failed
  - id: review
    from_states: [implemented]
    to_state: reviewed
    run: ["./review", "--strict"]
    isolation: worktree
    touches: ["apps/{subject}/**", "docs/{data.KEY}.md"]
    failure: retryable
    outcomes: {3: needs_changes}
    requires:
      - subject_state: {factory_id: build, subject: "{subject}", states: [implemented]}
      - capacity: {factory_id: build, states: [selected, implemented], below: 5}
      - changed: {paths: ["src/**"], since: last_success, branch: main}
      - command: {run: "test -f x", timeout: 10s}
      - all: [{any: [{not: {subject_state: {factory_id: build, not_states: [failed]}}}]}]
  - id: promote
    from_states: [reviewed]
    to_state: promoted
    run: ./promote
    isolation: none
    batch: {min: 3, max: 10, max_wait: 30m}
    approval: true
    emits: {factory_id: build, state: selected}
    failure: terminal
"""


def test_every_step_field_of_the_spec_builds() -> None:
    """Every example of SPEC §2's step table, in one factory, builds into the model.

    (validate accepts it whole: see the next test.)
    """
    data = yaml.safe_load(FULL)
    f = build_factory(data, path="build.yaml", step_lines=[16, 32, 44], settings=Settings())
    implement, review, promote = f.steps
    assert (f.description, f.poll_interval, f.autonomy) == (
        "Build an app, from selection to promotion.",
        timedelta(seconds=10),
        Autonomy.SUPERVISED,
    )
    assert f.discover == (Discover(glob="apps/*/"), Discover(command="./list-apps"))
    assert f.limits == Limits(max_parallel=3, wip=MappingProxyType({"implemented": 5}))
    assert implement.agent == AgentCall(
        use="claude_code", prompt="Implement {subject} ({data.KEY})", model="opus", args=("-v",)
    )
    assert implement.isolation is Isolation.WORKTREE  # the default for agent steps
    assert (implement.setup, implement.timeout, implement.max_parallel) == (
        Setup(run="make deps"),
        timedelta(minutes=40),
        2,
    )
    assert implement.merge == Merge(
        into="main", strategy=MergeStrategy.SQUASH, on_conflict=OnConflict.AGENT
    )
    assert implement.locks == (
        LockSpec(name="branch:main", ttl=timedelta(minutes=10)),
        LockSpec(name="deploy"),
    )
    assert implement.retry == RetryPolicy()
    assert implement.failure is FailureMode.INFER
    assert implement.classify == (
        ClassifyRule(match="rate limit", kind=FailureKind.QUOTA),
        ClassifyRule(exit=42, kind=FailureKind.NEEDS_HUMAN),
        ClassifyRule(match="denied", exit=1, kind=FailureKind.TERMINAL),
    )
    assert implement.on_terminal == "failed"
    assert (review.run, review.isolation, review.failure) == (
        ("./review", "--strict"),
        Isolation.WORKTREE,
        FailureMode.RETRYABLE,
    )
    assert review.touches == ("apps/{subject}/**", "docs/{data.KEY}.md")
    assert review.merge == Merge()  # a worktree step lands through the queue by default
    assert review.outcomes == {3: "needs_changes"}
    assert isinstance(review.outcomes, MappingProxyType)
    assert review.requires == (
        SubjectState(factory_id="build", subject="{subject}", states=("implemented",)),
        Capacity(factory_id="build", states=("selected", "implemented"), below=5),
        Changed(paths=("src/**",), since="last_success", branch="main"),
        Command(run="test -f x", timeout=timedelta(seconds=10)),
        AllOf(
            items=(
                AnyOf(items=(Not(item=SubjectState(factory_id="build", not_states=("failed",))),)),
            )
        ),
    )
    assert promote.batch == Batch(min=3, max=10, max_wait=timedelta(minutes=30))
    assert (promote.approval, promote.isolation, promote.failure) == (
        True,
        Isolation.NONE,
        FailureMode.TERMINAL,
    )
    assert promote.emits == Emits(factory_id="build", state="selected")


def test_the_full_factory_is_accepted(tmp_path: Path) -> None:
    """Every SPEC §2 field is carried out, so validate accepts the factory using them all."""
    f = load_config(project(tmp_path, {"build.yaml": FULL})).factories[0]
    assert [s.line for s in f.steps] == [16, 32, 46]


def test_step_defaults_come_from_frequency_yaml(tmp_path: Path) -> None:
    """timeout, retry and failure fall back to `defaults:`; a step's retry overrides per field."""
    root = project(
        tmp_path,
        {
            "frequency.yaml": """
                max_parallel: 2
                lease: {ttl: 30s}
                locks: {ttl: 5m}
                defaults:
                  timeout: 20m
                  failure: retryable
                  retry: {max_attempts: 5, backoff: {initial: 1s, max: 1m}}
            """,
            "build.yaml": """
                factory_id: build
                state: {initial: a, terminal: [c]}
                steps:
                  - {id: one, from_states: [a], to_state: b, run: ./one}
                  - id: two
                    from_states: [b]
                    to_state: c
                    timeout: 90
                    failure: infer
                    retry: {backoff: {factor: 3}}
            """,
        },
    )
    config = load_config(root)
    s = config.settings
    assert (s.max_parallel, s.lease_ttl, s.lock_ttl) == (
        2,
        timedelta(seconds=30),
        timedelta(minutes=5),
    )
    one, two = config.factories[0].steps
    base = Backoff(initial=timedelta(seconds=1), max=timedelta(minutes=1))
    assert (one.timeout, one.failure, one.retry) == (
        timedelta(minutes=20),
        FailureMode.RETRYABLE,
        RetryPolicy(max_attempts=5, backoff=base),
    )
    assert (two.timeout, two.failure, two.retry) == (
        timedelta(seconds=90),
        FailureMode.INFER,
        RetryPolicy(max_attempts=5, backoff=Backoff(initial=base.initial, max=base.max, factor=3)),
    )


def test_settings_not_carried_out_yet_still_build() -> None:
    """archive_after and remote build, for when they are carried out; named agents build
    into AgentDefs with their adapter's own settings apart."""
    s = build_settings(
        {
            "archive_after": "2d",
            "remote": "origin",
            "agents": {
                "reviewer": {
                    "use": "codex",
                    "model": "gpt-5.5",
                    "args": ["--fast"],
                    "sandbox": "read-only",
                    "prices": {"gpt-5.5": {"input": 1.25, "output": 10}},
                    "budget": {"usd": 20},
                },
                "old": {"use": "claude_code"},
            },
        }
    )
    assert (s.archive_after, s.remote) == (timedelta(days=2), "origin")
    reviewer = s.agents["reviewer"]
    assert (reviewer.use, reviewer.model, reviewer.args) == ("codex", "gpt-5.5", ("--fast",))
    assert dict(reviewer.options) == {"sandbox": "read-only"}
    assert reviewer.prices["gpt-5.5"] == Price(input=1.25, output=10.0)
    assert reviewer.budget == Budget(usd=20.0, per=Window.DAY)
    assert s.agents["old"].use == "claude"
    assert (Settings().archive_after, Settings().remote, dict(Settings().agents)) == (
        None,
        None,
        {},
    )


def test_isolation_defaults_by_kind_of_step(tmp_path: Path) -> None:
    """Agent steps default to a worktree (SPEC §2), shell steps and gates to none; a
    worktree step always has a merge (defaults), a step in the repository none."""
    data = yaml.safe_load(FULL)
    data["steps"][1].pop("isolation")
    f = build_factory(data, path="build.yaml", step_lines=[1, 2, 3], settings=Settings())
    assert [s.isolation for s in f.steps[:2]] == [Isolation.WORKTREE, Isolation.NONE]
    assert [s.merge is None for s in f.steps] == [False, True, True]
    assert factory_with(tmp_path / "gate", "").steps[0].isolation is Isolation.NONE


def test_outcome_keys_may_be_quoted_digits(tmp_path: Path) -> None:
    """`outcomes` keys are exit codes whether written 3 or "3"; both become ints."""
    step = factory_with(tmp_path, 'outcomes: {3: selected, "4": failed}').steps[0]
    assert dict(step.outcomes) == {3: "selected", 4: "failed"}


def test_yes_no_on_off_and_dates_stay_strings(tmp_path: Path) -> None:
    """Only true/false are booleans: yes/no/on/off, dates and 010 stay strings."""
    root = project(
        tmp_path,
        {
            "build.yaml": """
                factory_id: build
                description: 2024-01-01
                state: {initial: on, terminal: [off, no]}
                steps:
                  - {id: yes, from_states: [on], to_state: off, approval: true}
                  - {id: "010", from_states: [on], to_state: "no", run: [echo, 010, 0x1F]}
            """
        },
    )
    f = load_config(root).factories[0]
    assert (f.description, f.initial, f.terminal) == ("2024-01-01", "on", ("off", "no"))
    assert [s.id for s in f.steps] == ["yes", "010"]
    assert f.steps[0].approval is True
    assert f.steps[1].run == ("echo", "010", "0x1F")


def test_factory_files_are_read_in_name_order(tmp_path: Path) -> None:
    """Every .yaml/.yml but frequency.yaml is a factory, sorted by file name."""
    seed = SEED.replace("build", "{name}")
    root = project(
        tmp_path,
        {
            "b.yml": seed.format(name="second"),
            "a.yaml": seed.format(name="first"),
            "frequency.yaml": "max_parallel: 1\n",
            "notes.txt": "not config",
        },
    )
    config = load_config(root)
    assert [(f.factory_id, f.path) for f in config.factories] == [
        ("first", ".frequency/a.yaml"),
        ("second", ".frequency/b.yml"),
    ]
    names = [p.name for p in find_config_files(root)]
    assert names == ["a.yaml", "b.yml", "frequency.yaml"]


def test_no_frequency_folder_is_no_config(tmp_path: Path) -> None:
    """Without .frequency/ the error says so and hints at `git freq init`."""
    with pytest.raises(NoConfig) as info:
        load_config(tmp_path)
    assert info.value.message == f"no .frequency/ folder in {tmp_path}"
    assert info.value.hint is not None and info.value.hint.command == ("init",)


def test_emits_target_counts_as_reached(tmp_path: Path) -> None:
    """A from_state that another factory's `emits:` creates subjects in is reached."""
    root = project(
        tmp_path,
        {
            "build.yaml": SEED + "    emits: {factory_id: deploy, state: ready}\n",
            "deploy.yaml": """
                factory_id: deploy
                state: {initial: queued, terminal: [done]}
                steps:
                  - {id: ship, from_states: [ready], to_state: done}
            """,
        },
    )
    assert [f.factory_id for f in load_config(root).factories] == ["build", "deploy"]


# ---------------------------------------------------------------- problems


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_refused_config_case(tmp_path: Path, case: Path) -> None:
    """Each case file's config is refused with exactly its problem lines, in order."""
    data = yaml.safe_load(case.read_text())
    assert data["description"]
    root = project(tmp_path, data["files"])
    assert problems_of(root) == data["problems"]


def test_problems_of_several_files_are_reported_at_once(tmp_path: Path) -> None:
    """Schema and semantic problems of every file come in one ConfigError, file by file."""
    root = project(
        tmp_path,
        {
            "build.yaml": SEED.replace("[selected]", "[selected, x]") + "    tiemout: 5m\n",
            "deploy.yaml": """
                factory_id: deploy
                state: {initial: queued, terminal: [done]}
                steps:
                  - id: ship
                    from_states: [queued]
                    to_state: done
                    requires: [{subject_state: {factory_id: biuld, states: [promoted]}}]
                  - {id: ship, from_states: [done], to_state: done}
            """,
            "frequency.yaml": "max_parallel: many\n",
        },
    )
    with pytest.raises(ConfigError) as info:
        load_config(root)
    assert info.value.message == "5 problems in configuration"
    assert [str(p) for p in info.value.problems] == [
        ".frequency/build.yaml:9: $.steps[0].tiemout: unknown field 'tiemout'",
        ".frequency/deploy.yaml:7: $.steps[0].requires[0].subject_state.factory_id: "
        "requires names unknown factory 'biuld'",
        ".frequency/deploy.yaml:8: $.steps[1].id: duplicate step id 'ship' (first at line 4)",
        ".frequency/deploy.yaml:8: $.steps[1].from_states[0]: "
        "state 'done' is terminal: no step may leave it",
        ".frequency/frequency.yaml:1: $.max_parallel: must be an integer, not 'many'",
    ]


def test_yaml_syntax_error_has_its_line(tmp_path: Path) -> None:
    """A YAML syntax error is one problem with the line of its mark; other files still count."""
    root = project(
        tmp_path,
        {
            "a.yaml": "factory_id: a\nstate:\n  initial: x\n  terminal: [y\nsteps: []\n",
            "b.yaml": "factory_id: b\n  state: {}\n",
            "c.yaml": "factory_id: c\n---\nfactory_id: d\n",
        },
    )
    assert problems_of(root) == [
        ".frequency/a.yaml:5: invalid YAML: expected ',' or ']', but got ':'",
        ".frequency/b.yaml:2: invalid YAML: mapping values are not allowed here",
        ".frequency/c.yaml:2: invalid YAML: expected a single document in the stream "
        "but found another document",
    ]


def test_anchors_and_merge_keys_share_step_settings(tmp_path: Path) -> None:
    """Anchors and `<<:` merge keys work; overriding a merged key is not a duplicate."""
    root = project(
        tmp_path,
        {
            "build.yaml": """
                factory_id: build
                state: {initial: a, terminal: [c]}
                steps:
                  - &common {id: one, from_states: [a], to_state: b, timeout: 5m, run: make}
                  - <<: *common
                    id: two
                    from_states: [b]
                    to_state: c
                    timeout: 10m
            """
        },
    )
    one, two = load_config(root).factories[0].steps
    assert (one.timeout, two.timeout, two.run, two.line) == (
        timedelta(minutes=5),
        timedelta(minutes=10),
        "make",
        5,
    )


def test_unreadable_and_cyclic_files_are_problems(tmp_path: Path) -> None:
    """Non-UTF-8 bytes, forbidden characters and self-referring aliases are refused."""
    root = project(tmp_path, {"b.yaml": "factory_id: \x07\n", "c.yaml": "a: &x [*x]\n"})
    (root / ".frequency" / "a.yaml").write_bytes(b"\xff\xfe")
    (root / ".frequency" / ".hidden.yaml").write_text("not: [config")
    assert problems_of(root) == [
        ".frequency/a.yaml: is not UTF-8 text (byte 0xff at offset 0); is it a binary file?",
        ".frequency/b.yaml: invalid YAML: "
        "unacceptable character #x0007: special characters are not allowed",
        ".frequency/c.yaml: invalid YAML: an alias refers to a node that contains it",
    ]


def test_a_broken_factory_is_not_called_unknown(tmp_path: Path) -> None:
    """A factory whose file is invalid still exists for other files' references."""
    root = project(
        tmp_path,
        {
            "build.yaml": SEED + "    timeout: soon\n",
            "deploy.yaml": """
                factory_id: deploy
                state: {initial: queued, terminal: [done]}
                steps:
                  - id: ship
                    from_states: [queued]
                    to_state: done
                    requires: [{capacity: {factory_id: build, states: [nowhere], below: 1}}]
            """,
        },
    )
    assert problems_of(root) == [
        ".frequency/build.yaml:9: $.steps[0].timeout: "
        "'soon' is not a duration (use e.g. 90s, 40m, 2h)",
    ]


def test_expand_config_refuses_invalid_config(tmp_path: Path) -> None:
    """`validate --expand` shows nothing of an invalid configuration."""
    root = project(tmp_path, {"build.yaml": SEED.replace("selected]", "x]")})
    with pytest.raises(ConfigError):
        expand_config(root)


# ---------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15s", timedelta(seconds=15)),
        ("40m", timedelta(minutes=40)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("1h30m", timedelta(minutes=90)),
        ("500ms", timedelta(milliseconds=500)),
        ("90", timedelta(seconds=90)),
        ("0", timedelta(0)),
    ],
)
def test_durations_parse(tmp_path: Path, text: str, expected: timedelta) -> None:
    """Duration strings and plain integers (seconds) load as timedeltas."""
    assert factory_with(tmp_path, f"timeout: {text}").steps[0].timeout == expected


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("5x", "'5x'"),
        ("1.5h", "'1.5h'"),
        ("1.5", "1.5"),
        ("-3", "-3"),
        ('"90"', "'90'"),
        ("m", "'m'"),
        ('""', "''"),
        ("1m30", "'1m30'"),
        ("true", "true"),
        ("[1]", "a list"),
    ],
)
def test_bad_durations_are_refused(tmp_path: Path, text: str, shown: str) -> None:
    """Anything but `<n><unit>...` or a whole number of seconds is refused with the reason."""
    root = project(tmp_path, {"build.yaml": SEED + f"    timeout: {text}\n"})
    assert problems_of(root) == [
        f".frequency/build.yaml:9: $.steps[0].timeout: "
        f"{shown} is not a duration (use e.g. 90s, 40m, 2h)"
    ]


@given(st.text(alphabet="0123456789dhms", max_size=8))
def test_schema_durations_agree_with_the_model(text: str) -> None:
    """The schema's duration pattern accepts exactly what model.parse_duration parses."""
    pattern = schemas.load_schema(schemas.FACTORY)["$defs"]["duration"]["pattern"]
    try:
        parse_duration(text)
        parses = True
    except DurationTooLong:
        parses = True  # well-formed; the schema's freq-duration format refuses the length
    except ValueError:
        parses = False
    assert (re.search(pattern, text) is not None) == parses


@pytest.mark.parametrize(
    ("where", "text", "shown"),
    [
        ("timeout", "99999999999d", "'99999999999d'"),
        ("timeout", "10000d1s", "'10000d1s'"),
        ("timeout", "999999999999999999", "999999999999999999"),
        ("retry", "{backoff: {max: 240001h}}", "'240001h'"),
        ("locks", "[{name: deploy, ttl: 99999999999999999999m}]", "'99999999999999999999m'"),
        ("requires", "[{command: {run: 'true', timeout: 10001d}}]", "'10001d'"),
    ],
)
def test_too_long_durations_are_one_problem(
    tmp_path: Path, where: str, text: str, shown: str
) -> None:
    """A well-formed duration above 10000d is refused in one line (timedelta would overflow)."""
    root = project(tmp_path, {"build.yaml": SEED + f"    {where}: {text}\n"})
    [problem] = problems_of(root)
    assert problem.startswith(".frequency/build.yaml:9: $.steps[0].")
    assert problem.endswith(f": {shown} is too long (at most 10000d)")


def test_too_long_durations_in_frequency_yaml(tmp_path: Path) -> None:
    """frequency.yaml's durations have the same bound, each its own problem line."""
    root = project(
        tmp_path,
        {
            "build.yaml": SEED,
            "frequency.yaml": """
                lease: {ttl: 99999999999d}
                defaults: {timeout: 10000d, retry: {backoff: {initial: 1s, max: 864000001}}}
            """,
        },
    )
    assert problems_of(root) == [
        ".frequency/frequency.yaml:1: $.lease.ttl: '99999999999d' is too long (at most 10000d)",
        ".frequency/frequency.yaml:2: $.defaults.retry.backoff.max: "
        "864000001 is too long (at most 10000d)",
    ]
    assert parse_duration("10000d") == timedelta(days=10000)


# ---------------------------------------------------------------- flow


FLOW = """
factory_id: app
state:
  initial: idea
  terminal: [shipped, dropped]
flow: [implement, review, promote]
steps:
  implement:
    to_state: implemented
    run: ./build
  review:
    from_states: [implemented, idea]
    to_state: reviewed
    run: ./review
    outcomes: {3: idea}
  promote:
"""

LIST = """
factory_id: app
state:
  initial: idea
  terminal: [shipped, dropped]
steps:
  - id: implement
    from_states: [idea]
    to_state: implemented
    run: ./build
  - id: review
    from_states: [implemented, idea]
    to_state: reviewed
    run: ./review
    outcomes: {3: idea}
  - id: promote
    from_states: [reviewed]
    to_state: shipped
"""


def test_flow_expands_to_the_list_form(tmp_path: Path) -> None:
    """`flow:` gives the same model and the same expansion as the equivalent list form."""
    flow_root = project(tmp_path / "flow", {"app.yaml": FLOW})
    list_root = project(tmp_path / "list", {"app.yaml": LIST})
    from_flow = load_config(flow_root).factories[0]
    from_list = load_config(list_root).factories[0]
    assert [s.line for s in from_flow.steps] == [7, 10, 15]
    assert [replace(s, line=None) for s in from_flow.steps] == [
        replace(s, line=None) for s in from_list.steps
    ]
    assert expand_config(flow_root) == expand_config(list_root)
    assert expand_config(list_root) == {".frequency/app.yaml": yaml.safe_load(LIST)}


# ---------------------------------------------------------------- schemas and docs


@pytest.mark.parametrize("name", [schemas.FACTORY, schemas.SETTINGS])
def test_schemas_are_valid_draft_2020_12(name: str) -> None:
    """Both packaged schemas pass the draft 2020-12 metaschema and have an $id."""
    schema = schemas.load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$id"]
    assert schemas.schema_text(name) == (REPO / "schemas" / name).read_text()


def test_packaged_schemas_win_over_the_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a wheel the schemas are read from freq/schemas/ as package data."""
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / schemas.FACTORY).write_text("{}")
    monkeypatch.setattr(layout, "PACKAGED_SCHEMAS", tmp_path / "schemas")
    assert schemas.schema_text(schemas.FACTORY) == "{}"
    assert (
        schemas.schema_text(schemas.SETTINGS) == (REPO / "schemas" / schemas.SETTINGS).read_text()
    )


def test_shared_schema_definitions_are_identical() -> None:
    """The settings schema's copies of duration, retry, failure, budget and respond match
    the factory's (agentDef, a named agent, is the settings' own)."""
    factory = schemas.load_schema(schemas.FACTORY)["$defs"]
    settings = dict(schemas.load_schema(schemas.SETTINGS)["$defs"])
    assert settings.pop("agentDef")["required"] == ["use"]
    assert {k: factory[k] for k in settings} == settings


def _properties(node: object) -> set[str]:
    """Every name under any `properties` of a schema."""
    if isinstance(node, list):
        return set().union(*(_properties(n) for n in node))
    if not isinstance(node, dict):
        return set()
    found = set(node.get("properties", {}))
    return found.union(*(_properties(v) for v in node.values()))


def _resolve(root: dict, ref: str) -> dict:  # type: ignore[type-arg]
    """The subschema a local `$ref` (`#/$defs/a/properties/b`) points at."""
    node = root
    for part in ref.removeprefix("#").split("/")[1:]:
        node = node[part]
    return node


def _undescribed(root: dict, node: object) -> list[str]:  # type: ignore[type-arg]
    """Names of properties with no description, their own or their $ref's."""
    if isinstance(node, list):
        return [n for item in node for n in _undescribed(root, item)]
    if not isinstance(node, dict):
        return []
    missing = [
        name
        for name, p in node.get("properties", {}).items()
        if "description" not in p and "description" not in _resolve(root, p.get("$ref", "#"))
    ]
    return missing + [n for v in node.values() for n in _undescribed(root, v)]


@pytest.mark.parametrize("name", [schemas.FACTORY, schemas.SETTINGS])
def test_every_schema_property_is_described_and_documented(name: str) -> None:
    """Each property has a description and appears as `name` in docs/config.md."""
    schema = schemas.load_schema(name)
    assert _undescribed(dict(schema), schema) == []
    doc = (REPO / "docs" / "config.md").read_text()
    documented = {part for span in re.findall(r"`([\w.]+)`", doc) for part in span.split(".")}
    assert sorted(_properties(schema) - documented) == []


def test_typed_predicates_take_the_keyed_fields_and_type() -> None:
    """Each `type:` form has exactly the fields of its keyed form, plus `type` itself."""
    defs = schemas.load_schema(schemas.FACTORY)["$defs"]
    for keyed, typed in [
        ("subjectState", "typedSubjectState"),
        ("capacity", "typedCapacity"),
        ("changed", "typedChanged"),
        ("command", "typedCommand"),
    ]:
        assert list(defs[typed]["properties"]) == ["type", *defs[keyed]["properties"]]
        assert defs[typed]["required"] == defs[keyed]["required"]
        assert defs[typed].get("anyOf") == defs[keyed].get("anyOf")
    kinds = defs["typedPredicate"]["properties"]["type"]["enum"]
    assert kinds == list(defs["keyedPredicate"]["properties"])


def test_docs_complete_example_loads(tmp_path: Path) -> None:
    """The complete example of docs/config.md is a valid configuration."""
    doc = (REPO / "docs" / "config.md").read_text()
    example = doc.split("## A complete example", 1)[1]
    files = dict(re.findall(r"`\.frequency/([\w.]+)`:\n\n```yaml\n(.*?)```", example, re.S))
    assert set(files) == {"frequency.yaml", "build.yaml", "deploy.yaml"}
    config = load_config(project(tmp_path, files))
    assert [f.factory_id for f in config.factories] == ["build", "deploy"]


def test_examples_load(tmp_path: Path) -> None:
    """Every example project under examples/ is a valid configuration."""
    folders = sorted({p.parent for p in (REPO / "examples").rglob("*.yaml")})
    assert folders
    for k, folder in enumerate(folders):
        root = tmp_path / str(k)
        shutil.copytree(folder, root / ".frequency")
        assert load_config(root).factories, folder


def test_problems_serialise_to_json(tmp_path: Path) -> None:
    """A ConfigError's --json form carries every problem's path, line, where and reason."""
    root = project(tmp_path, {"build.yaml": SEED + "    tiemout: 5m\n"})
    with pytest.raises(ConfigError) as info:
        load_config(root)
    data = json.loads(json.dumps(info.value.as_json()))
    assert data["problems"] == [
        {
            "path": ".frequency/build.yaml",
            "line": 9,
            "where": "$.steps[0].tiemout",
            "reason": "unknown field 'tiemout'",
        }
    ]
