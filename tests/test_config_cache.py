"""The cache of validated configuration: keyed by exact bytes, never trusted over the files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from freq.config import CACHE_NAME, load_config
from freq.errors import ConfigError

from .conftest import FreqRepo

FACTORY = """
factory_id: build
state: {initial: selected, terminal: [done]}
steps:
  - id: implement
    from_states: [selected]
    to_state: done
    run: "true"
    outcomes: {3: selected}
    requires:
      - type: capacity
        factory_id: build
        states: [done]
        below: 5
"""


def _cache(repo: FreqRepo) -> Path:
    return repo.path / ".git" / "frequency" / "cache"


def test_a_valid_configuration_is_rebuilt_from_the_cache_without_yaml(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A second load with unchanged files gives the same Config, and a fresh process that
    loads it imports neither yaml nor jsonschema."""
    r = freq_repo(
        {".frequency/build.yaml": FACTORY, ".frequency/frequency.yaml": "max_parallel: 2\n"}
    )
    first = load_config(r.path, cache_dir=_cache(r))
    assert (_cache(r) / CACHE_NAME).is_file()
    again = load_config(r.path, cache_dir=_cache(r))
    assert again == first
    assert again.factories[0].steps[0].outcomes == {3: "selected"}
    assert again.factories[0].steps[0].line == first.factories[0].steps[0].line == 4
    probe = (
        "import sys; from pathlib import Path; from freq.config import load_config\n"
        f"c = load_config({str(r.path)!r}, cache_dir=Path({str(_cache(r))!r}))\n"
        "heavy = sorted(m for m in ('yaml', 'jsonschema') if m in sys.modules)\n"
        "print(c.settings.max_parallel, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2 []"


def test_a_changed_byte_is_a_miss_and_is_validated_again(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """An edit that breaks the configuration is reported though a valid one was cached."""
    r = freq_repo({".frequency/build.yaml": FACTORY})
    load_config(r.path, cache_dir=_cache(r))
    r.write(".frequency/build.yaml", FACTORY.replace("below: 5", "below: 0"))
    with pytest.raises(ConfigError) as info:
        load_config(r.path, cache_dir=_cache(r))
    assert "below" in str(info.value.problems[0])
    r.write(".frequency/build.yaml", FACTORY.replace("below: 5", "below: 7"))
    pred = load_config(r.path, cache_dir=_cache(r)).factories[0].steps[0].requires[0]
    assert getattr(pred, "below", None) == 7


@pytest.mark.parametrize("junk", [b"", b"{not json", b'{"key": 1}', b'["a list"]'])
def test_a_corrupt_cache_is_a_miss_and_is_rewritten(freq_repo, junk: bytes) -> None:  # type: ignore[no-untyped-def]
    """Whatever is in the cache file, the files decide; a bad cache is replaced."""
    r = freq_repo({".frequency/build.yaml": FACTORY})
    good = load_config(r.path, cache_dir=_cache(r))
    (_cache(r) / CACHE_NAME).write_bytes(junk)
    assert load_config(r.path, cache_dir=_cache(r)) == good
    assert json.loads((_cache(r) / CACHE_NAME).read_text())["factories"][0]["path"] == (
        ".frequency/build.yaml"
    )


def test_an_unwritable_cache_folder_only_costs_the_cache(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """A cache folder that cannot be made is no error: the configuration still loads."""
    r = freq_repo({".frequency/build.yaml": FACTORY})
    blocker = r.path / "blocker"
    blocker.write_text("a file where a folder would go")
    assert load_config(r.path, cache_dir=blocker / "cache").factories[0].factory_id == "build"


def test_the_pipeline_judges_the_bytes_the_key_was_made_of(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """The cache key and the validation see the same bytes: a file rewritten between the
    two reads cannot leave a verdict about one content under another content's key."""
    from freq import configfiles

    r = freq_repo({".frequency/build.yaml": FACTORY})
    bad = FACTORY.replace("below: 5", "below: 0").encode()
    with pytest.raises(ConfigError):
        configfiles.load(r.path, {".frequency/build.yaml": bad})  # the file on disk is good
    good = configfiles.load(r.path, {".frequency/build.yaml": FACTORY.encode()})
    assert good.config.factories[0].factory_id == "build"


def test_a_lock_named_twice_in_one_step_is_refused(freq_repo) -> None:  # type: ignore[no-untyped-def]
    """`locks: [db, {name: db, ttl: 5m}]` is one lock named twice: a config problem."""
    r = freq_repo(
        {
            ".frequency/build.yaml": FACTORY.replace(
                '    run: "true"\n', '    run: "true"\n    locks: [db, {name: db, ttl: 5m}]\n'
            )
        }
    )
    with pytest.raises(ConfigError) as info:
        load_config(r.path)
    assert [str(p) for p in info.value.problems] == [
        ".frequency/build.yaml:8: $.steps[0].locks[1]: lock 'db' is named twice in this step"
    ]
