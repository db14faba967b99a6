"""End to end through the CLI boundary on real repositories: the foundation's promises."""

from __future__ import annotations

import json

import pytest

from .conftest import FreqRepo

BUILD = """
factory_id: build
state:
  initial: selected
  terminal: [promoted, failed]
steps:
  - id: implement
    from_states: [selected]
    to_state: implemented
    run: echo "implementing $FREQ_SUBJECT attempt $FREQ_ATTEMPT in $FREQ_STATE"
  - id: review
    from_states: [implemented]
    to_state: reviewed
    run: echo "review $FREQ_SUBJECT"
  - id: build_validate
    from_states: [reviewed]
    to_state: validated
    run: test "$FREQ_FACTORY" = build
  - id: promote
    from_states: [validated]
    to_state: promoted
    run: echo "promote $FREQ_SUBJECT $FREQ_STEP"
"""

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


@pytest.fixture
def build(freq_repo) -> FreqRepo:  # type: ignore[no-untyped-def]
    return freq_repo({".frequency/build.yaml": BUILD})  # type: ignore[no-any-return]


def test_five_subjects_run_to_promoted_with_trailers(build: FreqRepo) -> None:
    """5 subjects go selected → promoted; each has 4 transition commits with trailers."""
    head, index = build.git("rev-parse", "HEAD"), (build.path / ".git/index").read_bytes()
    names = [f"app-{i}" for i in range(1, 6)]
    build.run("add", "build", *names).assert_success()
    out = build.run("run", "--until-idle").assert_success().out
    assert out.splitlines()[-1] == "done: 20 succeeded, 0 failed, 0 recovered, 0 lost races"
    status = json.loads(build.run("status", "--json").assert_success().out)
    counts = dict(status["factories"][0]["states"])
    assert counts == {
        "selected": 0,
        "implemented": 0,
        "reviewed": 0,
        "validated": 0,
        "promoted": 5,
        "failed": 0,
    }
    for name in names:
        fmt = "%s%x1f%(trailers:key=Freq-Step,key=Freq-From,key=Freq-To,valueonly,separator=|)"
        lines = build.git("log", f"--format={fmt}", f"refs/frequency/subjects/build/{name}")
        rows = [ln.split("\x1f") for ln in lines.strip().splitlines()]
        transitions = [r for r in rows if " -> " in r[0] and "created" not in r[0]]
        assert [r[1] for r in reversed(transitions)] == [
            "implement|selected|implemented",
            "review|implemented|reviewed",
            "build_validate|reviewed|validated",
            "promote|validated|promoted",
        ]
        trailers = build.git(
            "log", "-1", "--format=%(trailers)", f"refs/frequency/subjects/build/{name}"
        )
        for key in (
            "Freq-Factory: build",
            f"Freq-Subject: {name}",
            "Freq-Attempt: 1",
            "Freq-Epoch:",
            "Freq-Worker:",
            "Freq-Duration-Ms:",
        ):
            assert key in trailers
    assert build.git("rev-parse", "HEAD") == head
    assert (build.path / ".git/index").read_bytes() == index
    assert build.git("status", "--porcelain") == "?? .frequency/\n"
    build.git("fsck", "--strict")


def test_output_tail_kept_in_commit_and_full_log_on_disk(build: FreqRepo) -> None:
    """The last attempt's output is in the subject's tree; the full log under .git/frequency."""
    build.run("add", "build", "x").assert_success()
    build.run("run", "--once").assert_success()
    assert (
        build.git("show", "refs/frequency/subjects/build/x:output.log")
        == "implementing x attempt 1 in selected\n"
    )
    (log,) = (build.path / ".git/frequency/logs/build/x").glob("implement-1-*.log")
    assert log.read_text() == "implementing x attempt 1 in selected\n"


def test_failed_step_records_error_and_stays(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A non-zero exit is a failure commit; the subject stays in its state."""
    r = freq_repo(
        {
            ".frequency/build.yaml": SEED.replace(
                "to_state: implemented", "to_state: implemented\n    run: echo boom >&2; exit 4"
            )
        }
    )
    r.run("add", "build", "x").assert_success()
    r.run("run", "--once").assert_success()
    shown = json.loads(r.run("show", "build", "x", "--json").assert_success().out)
    assert shown["subject"]["state"] == "selected"
    assert shown["subject"]["last_error"]["reason"] == "exit 4"
    assert shown["subject"]["last_error"]["summary"] == "boom"
    assert shown["subject"]["attempt"] == 1
    msg = r.git("log", "-1", "--format=%B", "refs/frequency/subjects/build/x")
    assert msg.splitlines()[0] == "build/x: implement failed in selected (exit 4)"
    assert "Freq-Failure: retryable (exit code 4)" in msg
    assert "Freq-Exit: 4" in msg


def test_outcomes_map_exit_codes_to_states(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """`outcomes: {3: needs_changes}` sends the subject there on exit 3."""
    r = freq_repo(
        {
            ".frequency/build.yaml": """
        factory_id: build
        state: {initial: selected, terminal: [done, needs_changes]}
        steps:
          - id: review
            from_states: [selected]
            to_state: done
            run: exit 3
            outcomes: {3: needs_changes}
        """
        }
    )
    r.run("add", "build", "x").assert_success()
    r.run("run", "--until-idle").assert_success()
    subj = json.loads(r.run("show", "build", "x", "--json").out)["subject"]
    assert subj["state"] == "needs_changes"


def test_seed_minimal_factory_is_a_gate(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """The seed's factory loads unchanged; its run-less step waits for approval."""
    r = freq_repo({".frequency/build.yaml": SEED})
    r.run("validate").assert_success()
    r.run("add", "build", "x").assert_success()
    out = r.run("plan").assert_success().out
    assert "build:\n  wait   x [selected]: gate implement waits for approval" in out


def test_add_from_file_and_duplicates(build: FreqRepo) -> None:
    """--from reads NAME [K=V] lines; re-adding is refused unless --skip-existing."""
    build.write("subjects.txt", "# apps\na owner=ana\nb\n\nc tier=1 owner=bo\n")
    res = build.run("add", "build", "--from", "subjects.txt", "--data", "env=dev", "--json")
    assert json.loads(res.assert_success().out)["added"] == ["a", "b", "c"]
    c = json.loads(build.run("show", "build", "c", "--json").out)["subject"]
    assert c["data"] == {"env": "dev", "owner": "bo", "tier": "1"}
    dup = build.run("add", "build", "b", "d").assert_failure()
    assert dup.err == (
        "git freq: subject already exists: build/b; nothing was added; "
        "leave those out, or pass --skip-existing\n"
    )
    ok = build.run("add", "build", "b", "d", "--skip-existing").assert_success()
    assert ok.out == "added 1 subject(s) to build in selected; 1 existed already\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "nope", "x"], "git freq: unknown factory 'nope' (known: build)\n"),
        (
            ["show", "build", "ghost"],
            "git freq: no subject 'ghost' in factory 'build'; see `git freq status build`\n",
        ),
        (
            ["add", "build", "bad name"],
            "git freq: subject name 'bad name' may hold only "
            "letters, digits and . _ + @ - and must not start with . or -\n",
        ),
        (
            ["add", "build", "x", "--state", "limbo"],
            "git freq: factory 'build' has no state "
            "'limbo' (states: selected, implemented, reviewed, validated, promoted, failed)\n",
        ),
        (
            ["add", "build", "x", "--data", "novalue"],
            "git freq: --data takes KEY=VALUE, got 'novalue'\n",
        ),
    ],
)
def test_user_mistakes_are_one_line(build: FreqRepo, args: list[str], message: str) -> None:
    """Unknown factory, subject, state or bad names: one line, exit 1 or 2, no traceback."""
    res = build.run(*args)
    assert res.code in (1, 2)
    assert res.err == message


def test_usage_error_exit_2(build: FreqRepo) -> None:
    """A malformed call exits 2 with one line."""
    res = build.run("run", "--once", "--until-idle")
    assert (res.code, res.err) == (
        2,
        "git freq: --once and --until-idle exclude each other (see `git freq run --help`)\n",
    )


def test_not_a_repository(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Outside a repository: one line naming the folder, exit 1."""
    res = FreqRepo(tmp_path).run("status")
    assert res.code == 1
    assert res.err == (
        "git freq: not a git repository: .; run `git init` first, or cd into a repository\n"
    )


def test_missing_config_hints_init(repo: FreqRepo) -> None:
    """A repository without .frequency/ says how to start."""
    res = repo.run("status")
    assert res.code == 1
    assert res.err.endswith("; run `git freq init`\n")


def test_config_errors_name_file_and_line(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """Invalid config is refused before anything runs, with file:line for each problem."""
    r = freq_repo({".frequency/build.yaml": SEED + "    tiemout: 5m\n"})
    res = r.run("validate")
    assert res.code == 1
    assert res.err.splitlines()[0].startswith(".frequency/build.yaml:9: ")
    assert "tiemout" in res.err


def test_manual_transition_is_recorded_with_reason(build: FreqRepo) -> None:
    """`transition` moves by hand and records who and why."""
    build.run("add", "build", "x").assert_success()
    res = build.run("transition", "build", "x", "validated", "--reason", "hotfix path")
    assert res.assert_success().out.startswith("build/x: selected -> validated (")
    msg = build.git("log", "-1", "--format=%B", "refs/frequency/subjects/build/x")
    assert msg.startswith("build/x: manual selected -> validated\n\nhotfix path\n")
    assert "Freq-Reason: hotfix path" in msg
    bad = build.run("transition", "build", "x", "nowhere", "--reason", "r").assert_failure()
    assert bad.err.startswith("git freq: factory 'build' has no state 'nowhere'")


def test_log_of_subject_factory_and_journal(build: FreqRepo) -> None:
    """`log` reads history for one subject, a factory, or every ref under refs/frequency."""
    build.run("add", "build", "a", "b").assert_success()
    build.run("run", "--once").assert_success()
    one = build.run("log", "build", "a").assert_success().out.splitlines()
    assert [ln.split(" ", 2)[2] for ln in one] == [
        "build/a: implement selected -> implemented",
        "build/a: implement claimed (attempt 1)",
        "build/a: created -> selected",
    ]
    assert len(build.run("log", "build").out.splitlines()) == 6
    journal = json.loads(build.run("log", "--json").assert_success().out)
    assert len([e for e in journal if e["ref"].startswith("refs/frequency/subjects/")]) == 6
    slots = build.git("for-each-ref", "--format=%(contents:subject)", "refs/frequency/caps/global")
    # a claim's slot points at its claim commit (a finished claim's slot may be reused)
    assert slots.split("\n")[0] in (
        "build/a: implement claimed (attempt 1)",
        "build/b: implement claimed (attempt 1)",
    )
    plain = build.git("log", "--oneline", "--glob=refs/frequency").splitlines()
    assert sorted(e["commit"][:7] for e in journal) == sorted(ln[:7] for ln in plain)


def test_plan_is_pure_and_json(build: FreqRepo) -> None:
    """`plan` changes nothing and reports the starts."""
    build.run("add", "build", "a").assert_success()
    before = build.git("for-each-ref", "refs/frequency")
    p = json.loads(build.run("plan", "--json").assert_success().out)
    assert [(s["subject"], s["step"]) for s in p["starts"]] == [("a", "implement")]
    assert build.git("for-each-ref", "refs/frequency") == before


def test_graph_mermaid_and_dot(build: FreqRepo) -> None:
    """`graph` draws states and steps."""
    m = build.run("graph").assert_success().out
    assert "build__selected -->|implement| build__implemented" in m
    d = build.run("graph", "--format", "dot").assert_success().out
    assert 'build__validated -> build__promoted [label="promote"];' in d


def test_init_then_tour(repo: FreqRepo) -> None:
    """init → add → run → status works on a fresh repository."""
    repo.run("init").assert_success()
    repo.run("validate").assert_success()
    repo.run("add", "build", "my-app").assert_success()
    repo.run("run", "--until-idle").assert_success()
    st = json.loads(repo.run("status", "build", "--json").out)
    assert dict(st["factories"][0]["states"])["promoted"] == 1
    again = repo.run("init")
    assert again.code == 1
    assert again.err == (
        "git freq: .frequency/frequency.yaml already exists; nothing was "
        "written; overwrite them: pass --force\n"
    )


def test_corrupt_state_is_reported_not_crashed(build: FreqRepo) -> None:
    """A foreign ref under refs/frequency/subjects: status warns, show errors cleanly."""
    build.run("add", "build", "ok").assert_success()
    head = build.git("rev-parse", "HEAD").strip()
    build.git("update-ref", "refs/frequency/subjects/build/foreign", head)
    st = build.run("status").assert_success()
    assert st.err == (
        f"warning: refs/frequency/subjects/build/foreign: commit {head[:12]} has no subject.json\n"
    )
    res = build.run("show", "build", "foreign").assert_failure()
    assert res.err == (
        f"git freq: refs/frequency/subjects/build/foreign: commit {head[:12]} has no subject.json\n"
    )
    build.run("run", "--until-idle").assert_success()


def test_every_command_is_documented_and_helps(repo: FreqRepo) -> None:
    """Each command appears in the README's command table and answers --help (sqlite-utils)."""
    from pathlib import Path

    import click

    from freq.cli import cli

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    names = []
    for name, cmd in cli.commands.items():
        names.append(name)
        if isinstance(cmd, click.Group):
            names += [f"{name} {sub}" for sub in cmd.commands]
    missing = [n for n in names if f"`{n}" not in readme]
    assert missing == []
    for n in names:
        res = repo.run(*n.split(), "--help")
        assert res.code == 0 and res.out.startswith("Usage: git freq "), n


def test_bare_call_lists_commands_and_short_help_works(repo: FreqRepo) -> None:
    """`git freq` alone prints the command list and exits 0; `-h` is click's help."""
    bare = repo.run().assert_success()
    assert bare.out.startswith("Usage: git freq [OPTIONS] COMMAND [ARGS]...\n")
    assert "\nCommands:\n" in bare.out
    assert bare.err == ""
    assert repo.run("-h").assert_success().out == bare.out
    dlq = repo.run("dlq").assert_success()
    assert dlq.out.startswith("Usage: git freq dlq [OPTIONS] COMMAND [ARGS]...\n")


def test_negative_log_count_is_a_usage_error(build: FreqRepo) -> None:
    """`log -n -1` is refused in one line with exit 2, rather than printing nothing."""
    res = build.run("log", "-n", "-1")
    assert (res.code, res.out) == (2, "")
    assert res.err == (
        "git freq: Invalid value for '-n' / '--max-count': -1 is not in the range x>=0. "
        "(see `git freq log --help`)\n"
    )


def test_graph_has_no_json_and_says_so_in_text(build: FreqRepo) -> None:
    """`graph --json` is a usage error reported as text only: graph's output is a diagram."""
    res = build.run("graph", "--json")
    assert (res.code, res.out) == (2, "")
    assert res.err == "git freq: No such option '--json'. (see `git freq graph --help`)\n"


def test_json_mode_errors_are_json_on_stdout_and_one_line(build: FreqRepo) -> None:
    """A command with --json reports a refusal as a JSON object plus the one stderr line."""
    res = build.run("show", "build", "ghost", "--json").assert_failure()
    assert json.loads(res.out) == {
        "error": {
            "code": "unknown-subject",
            "message": "no subject 'ghost' in factory 'build'",
            "hint": "see `git freq status build`",
            # the same hint as data, for scripts that act on it
            "next": {"text": "see", "command": ["status", "build"], "option": None},
        }
    }
    assert res.err == (
        "git freq: no subject 'ghost' in factory 'build'; see `git freq status build`\n"
    )


@pytest.mark.parametrize(("files", "out"), [(1, "ok: 1 factory (build)\n"), (2, None)])
def test_validate_counts_factories_in_words(freq_repo, files: int, out: str | None) -> None:  # type: ignore[no-untyped-def]
    """`validate` says `1 factory`, `2 factories`."""
    more = {".frequency/deploy.yaml": SEED.replace("factory_id: build", "factory_id: deploy")}
    r = freq_repo({".frequency/build.yaml": SEED, **(more if files == 2 else {})})
    got = r.run("validate").assert_success().out
    assert got == (out or "ok: 2 factories (build, deploy)\n")


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"app-1\napp-\xe9\n", "is not UTF-8 (byte 0xe9 at offset 10)"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "looks binary (a NUL byte at offset 8)"),
    ],
)
def test_add_from_a_file_that_is_not_text(build: FreqRepo, content: bytes, problem: str) -> None:
    """A binary or non-UTF-8 --from file: one line, exit 1, nothing written."""
    (build.path / "apps.bin").write_bytes(content)
    res = build.run("add", "build", "--from", "apps.bin").assert_failure()
    assert res.err == (
        f"git freq: --from apps.bin {problem}; nothing was added; "
        "it takes UTF-8 text, one NAME [KEY=VALUE ...] per line\n"
    )
    assert build.git("for-each-ref", "refs/frequency") == ""
