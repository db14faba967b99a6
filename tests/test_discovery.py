"""subjects.discover: globs and commands create subjects; names are checked; idempotent."""

from __future__ import annotations

import json

import pytest

from freq.discovery import subject_name

APPS = """
factory_id: apps
state: {initial: found, terminal: [done]}
subjects:
  discover:
    - glob: "apps/*/"
    - command: "printf 'from-cmd\\\\nbad name!\\\\n\\\\n'"
steps:
  - id: build
    from_states: [found]
    to_state: done
    run: "true"
"""


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("apps/web/", "web"),
        ("apps/My App/", "My-App"),
        (".hidden", "hidden"),
        ("x/y.lock", "y.lock"),
        ("  spaced  ", "spaced"),
    ],
)
def test_subject_names_are_sanitised(raw: str, name: str) -> None:
    """A match's basename becomes a ref component; what cannot be one is left to refuse."""
    assert subject_name(raw) == name


def test_discover_creates_each_once_and_refuses_bad_names(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """Globs and command lines become subjects; a second discover adds nothing."""
    r = freq_repo(
        {
            ".frequency/apps.yaml": APPS,
            "apps/web/README": "w",
            "apps/api/README": "a",
            "apps/file.txt": "not a dir",
        }
    )
    first = r.run("discover", "--json").assert_success()
    (found,) = json.loads(first.out)
    assert sorted(found["added"]) == ["api", "bad-name", "from-cmd", "web"]
    second = r.run("discover").assert_success()
    assert second.out == "apps: 0 added, 4 existed\n"
    r.write("apps/!!!/README", "x")
    third = r.run("discover", "apps")
    assert third.out == "apps: 0 added, 4 existed\n"
    assert third.err == "  warning: 'apps/!!!/': subject name '' is empty\n"
    created = r.git("log", "-1", "--format=%B", "refs/frequency/subjects/apps/web")
    assert "discovered" in created


def test_run_discovers_before_planning(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """`run` discovers new subjects at its first planning cycle and runs them."""
    r = freq_repo({".frequency/apps.yaml": APPS, "apps/web/README": "w"})
    r.run("run", "--until-idle").assert_success()
    status = json.loads(r.run("status", "--json").out)["factories"][0]
    assert dict(status["states"])["done"] == 3  # web, from-cmd, bad-name


def test_failing_discovery_command_is_a_warning(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A discovery command that fails is reported; glob results still count."""
    r = freq_repo(
        {
            ".frequency/apps.yaml": APPS.replace(
                "printf 'from-cmd\\\\nbad name!\\\\n\\\\n'", "exit 3"
            ),
            "apps/web/README": "w",
        }
    )
    res = r.run("discover").assert_success()
    assert res.out == "apps: 1 added, 0 existed\n"
    assert res.err == "  warning: `exit 3`: exit 3\n"


def test_discovered_subjects_keep_their_match_and_collisions_are_refused(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A sanitised name keeps the match it came from in data `discovered_as`; two different
    matches that make one name are both refused, naming each other, and neither is created."""
    r = freq_repo(
        {
            ".frequency/apps.yaml": APPS.replace(
                "printf 'from-cmd\\\\nbad name!\\\\n\\\\n'", "printf '../evil\\\\nweb\\\\n'"
            ),
            "apps/with space/README": "s",
            "apps/with-space/README": "d",
            "apps/web/README": "w",
        }
    )
    res = r.run("discover").assert_success()
    assert res.out == "apps: 1 added, 0 existed\n"
    assert res.err == (
        "  warning: 'apps/web/' and 'web' both make subject name 'web'; none of them was "
        "created\n"
        "  warning: 'apps/with space/' and 'apps/with-space/' both make subject name "
        "'with-space'; none of them was created\n"
    )
    shown = json.loads(r.run("show", "apps", "evil", "--json").assert_success().out)
    assert shown["subject"]["data"] == {"discovered_as": "../evil"}
    refs = r.git("for-each-ref", "--format=%(refname:lstrip=3)", "refs/frequency/subjects")
    assert refs == "apps/evil\n"
