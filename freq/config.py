"""The validated configuration of a project, and a cache that spares re-validating it.

Must not import dulwich, click or subprocess, nor yaml or jsonschema at import time: the
YAML pipeline (freq.configfiles) is imported only when the cache misses. `load_config`
validates every file of `.frequency/` and lists every problem (ConfigError). A valid result
is remembered in `.git/frequency/cache/config.v1.json`, keyed by the exact bytes of every
configuration file and of the code and schemas that judge them; the next load whose key
matches rebuilds the Config from the remembered documents without YAML or JSON Schema. The
cache is never trusted over the files: a changed byte anywhere is a miss, and a missing,
unreadable or corrupt cache is a miss that rewrites it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from freq import __version__
from freq.build import build_factory, build_settings
from freq.layout import (
    FACTORY_SCHEMA,
    FOLDER,
    SETTINGS_NAMES,
    SETTINGS_SCHEMA,
    check_not_a_file,
    find_config_files,
    is_config_name,
    schema_text,
)
from freq.model import Config, Settings

__all__ = [
    "FOLDER",
    "SETTINGS_NAMES",
    "check_not_a_file",
    "dump_yaml",
    "expand_config",
    "find_config_files",
    "load_config",
    "load_config_files",
]

CACHE_NAME = "config.v1.json"
_HERE = Path(__file__).resolve().parent
# the code and data that decide whether a configuration is valid and what it builds
_JUDGES = (
    "config.py",
    "configfiles.py",
    "build.py",
    "checks.py",
    "schemas.py",
    "model.py",
    "patterns.py",
    "layout.py",
)


def _schema_texts() -> list[bytes]:
    return [schema_text(name).encode() for name in (FACTORY_SCHEMA, SETTINGS_SCHEMA)]


def _key(root: Path, files: tuple[Path, ...]) -> tuple[str, list[tuple[str, bytes]]] | None:
    """The cache key of this configuration, and its files' bytes; None when one cannot be
    read (then the full pipeline reports it)."""
    try:
        contents = [(f.relative_to(root).as_posix(), f.read_bytes()) for f in files]
    except (OSError, ValueError):
        return None
    key = _digest(contents)
    return (key, contents) if key is not None else None


def _digest(contents: list[tuple[str, bytes]]) -> str | None:
    """The cache key of configuration files' bytes (relative path, content) and of the code
    and schemas that judge them; None when the code cannot be read."""
    h = hashlib.sha256(f"freq {__version__}\n".encode())
    try:
        for name in _JUDGES:
            h.update(name.encode() + b"\0" + (_HERE / name).read_bytes() + b"\0")
        for text in _schema_texts():
            h.update(text + b"\0")
    except OSError:
        return None
    for rel, data in contents:
        h.update(rel.encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    return h.hexdigest()


def _from_cache(path: Path, key: str, root: Path) -> Config | None:
    try:
        doc = json.loads(path.read_bytes())
        if not isinstance(doc, dict) or doc.get("key") != key:
            return None
        settings = build_settings(doc["settings"]) if doc["settings"] is not None else Settings()
        factories = tuple(
            build_factory(
                f["data"], path=f["path"], step_lines=tuple(f["step_lines"]), settings=settings
            )
            for f in doc["factories"]
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # unreadable or not ours: a miss, rewritten below
    return Config(root=str(root.resolve()), settings=settings, factories=factories)


def _to_cache(path: Path, key: str, settings: Any, factories: Any) -> None:
    doc = {
        "key": key,
        "settings": settings,
        "factories": [
            {"path": p, "data": data, "step_lines": list(lines)} for p, data, lines in factories
        ],
    }
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(doc, sort_keys=True))
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        with contextlib.suppress(OSError):
            tmp.unlink()  # the cache is an optimisation; the files are the truth


def load_config(root: str | os.PathLike[str], *, cache_dir: Path | None = None) -> Config:
    """Read and validate every file of `<root>/.frequency/`; ConfigError lists every problem.

    With `cache_dir`, a configuration whose bytes (and judging code) are unchanged since it
    was last found valid is rebuilt from the cache there, without YAML or JSON Schema."""
    base = Path(root)
    files = find_config_files(base)
    keyed = _key(base, files) if cache_dir is not None else None
    if keyed is not None and cache_dir is not None:
        hit = _from_cache(cache_dir / CACHE_NAME, keyed[0], base)
        if hit is not None:
            return hit
    from freq import configfiles

    # the pipeline judges the very bytes the key was made of, so a file changing meanwhile
    # can never put a verdict under another content's key
    loaded = configfiles.load(base, dict(keyed[1]) if keyed is not None else None)
    if keyed is not None and cache_dir is not None:
        _to_cache(cache_dir / CACHE_NAME, keyed[0], loaded.settings, loaded.factories)
    return loaded.config


def load_config_files(
    files: Mapping[str, bytes], *, root: str | os.PathLike[str], cache_dir: Path | None = None
) -> Config:
    """Validate configuration given as bytes, name in `.frequency/` → content (a commit's
    tree holds them, not a folder on disk), exactly as load_config validates the files of
    `<root>/.frequency/`: the same problems with the same files and lines (ConfigError),
    and with `cache_dir` the same cache."""
    base = Path(root)
    names = sorted(n for n in files if is_config_name(n))
    contents = [(f"{FOLDER}/{n}", files[n]) for n in names]
    key = _digest(contents) if cache_dir is not None else None
    if key is not None and cache_dir is not None:
        hit = _from_cache(cache_dir / CACHE_NAME, key, base)
        if hit is not None:
            return hit
    from freq import configfiles

    loaded = configfiles.load(base, dict(contents))
    if key is not None and cache_dir is not None:
        _to_cache(cache_dir / CACHE_NAME, key, loaded.settings, loaded.factories)
    return loaded.config


def expand_config(root: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """{relative path: factory in list form} with `flow:` expanded (defaults not filled in).

    Validates first, as load_config does (always through the YAML pipeline)."""
    from freq import configfiles

    return dict(configfiles.load(Path(root)).expanded)


def dump_yaml(doc: Any) -> str:
    """Render a plain document as block YAML in key order (for `validate --expand`)."""
    from freq import configfiles

    return configfiles.dump_yaml(doc)
