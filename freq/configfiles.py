"""Read `.frequency/*.yaml` into a Config: load, schema-check, expand `flow:`, build, check.

Must not import dulwich, click, subprocess or any freq module but model, schemas, checks,
build, layout and errors; it is the only module importing yaml (freq.config, which callers
use, imports it only when its cache of validated configuration misses). Every problem of
every file is collected and raised as one ConfigError (STYLE habit 7). The semantic checks
are pure, in freq.checks, and report JSON paths; this module maps those paths to file lines
(the YAML node tree) and builds Problems.

Three sections: YAML with its line map and bounds, flow expansion, and the pipeline; model
building is freq.build.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from freq.build import build_factory, build_settings
from freq.checks import Found, build_context, check_factory, check_settings
from freq.errors import ConfigError, Problem
from freq.layout import SETTINGS_NAMES, find_config_files
from freq.model import AgentDef, Config, Factory, Settings
from freq.schemas import JsonPath, factory_validator, settings_validator, violations

# ---------------------------------------------------------------- YAML


class _Loader(yaml.SafeLoader):
    """Safe YAML without 1.1 surprises: only true/false are booleans, only decimal integers
    are numbers (no octal, no 1:30 sexagesimal), timestamps stay strings."""


_KEEP = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:float", "tag:yaml.org,2002:merge"}
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag in _KEEP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789")
)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Doc:
    """One parsed file: its relative path, its data, and the node tree for line numbers."""

    path: str
    data: Any
    node: yaml.Node | None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Origin:
    """Where a flow-expanded step came from: its key, and which fields the flow filled in."""

    step_id: str
    implicit_from: bool
    implicit_to: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class _Source:
    """Turns a path into the (expanded) document into a Problem with file, line and JSON path."""

    doc: _Doc
    origins: Mapping[int, _Origin] = field(default_factory=dict)

    def problem(self, at: JsonPath, reason: str) -> Problem:
        """A Problem at `at` (list form); flow steps are mapped back to where they were written."""
        where, line = _locate(self.doc.node, self._original(at))
        return Problem(path=self.doc.path, line=line, where=where, reason=reason)

    def line(self, at: JsonPath) -> int:
        """The 1-based line of `at`."""
        return _locate(self.doc.node, self._original(at))[1]

    def _original(self, at: JsonPath) -> JsonPath:
        return _as_written(self.doc.data, self._unflowed(at))

    def _unflowed(self, at: JsonPath) -> JsonPath:
        """A list-form path as the file writes it when its step came from `flow:`."""
        if len(at) < 2 or at[0] != "steps" or not isinstance(at[1], int):
            return at
        origin = self.origins.get(at[1])
        if origin is None:
            return at
        rest = at[2:]
        if (rest[:1] == ("from_states",) and origin.implicit_from) or (
            rest[:1] == ("to_state",) and origin.implicit_to
        ):
            return ("flow", at[1])
        return (
            ("steps", origin.step_id) if rest[:1] == ("id",) else ("steps", origin.step_id, *rest)
        )


_PREDICATE_KINDS = frozenset(
    {"subject_state", "capacity", "changed", "command", "all", "any", "not"}
)


def _as_written(data: Any, at: JsonPath) -> JsonPath:
    """`at`, whose predicates are in the keyed form freq.checks spells
    (`requires[0].all[1].capacity.states`), as the file writes them: a predicate written
    `{type: KIND, ...}` has its fields beside `type`, an all/any its items under `predicates`,
    a not its item under `predicate` (`requires[0].predicates[1].states`)."""
    out: list[str | int] = []
    node, in_requires = data, False
    for seg in at:
        typed = (
            in_requires
            and isinstance(node, Mapping)
            and seg in _PREDICATE_KINDS
            and seg not in node
            and node.get("type") == seg
        )
        if typed and seg not in ("all", "any", "not"):
            continue  # a leaf's fields sit beside its type
        written = ("predicate" if seg == "not" else "predicates") if typed else seg
        in_requires = in_requires or written == "requires"
        out.append(written)
        node = _child(node, written)
    return tuple(out)


def _child(node: Any, seg: str | int) -> Any:
    """node[seg] when there is one, else None."""
    if isinstance(node, Mapping):
        return node.get(seg)
    if isinstance(node, list) and isinstance(seg, int) and 0 <= seg < len(node):
        return node[seg]
    return None


def _line(node: yaml.Node | None) -> int:
    return node.start_mark.line + 1 if node is not None else 1


def _key(seg: str | int) -> str:
    if isinstance(seg, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", seg):
        return "." + seg
    return f"[{seg}]" if isinstance(seg, int) else f"[{json.dumps(seg)}]"


def _locate(node: yaml.Node | None, path: JsonPath) -> tuple[str, int]:
    """The JSON path and line of the deepest node of `path` that exists in the file."""
    where, line = "$", _line(node)
    for seg in path:
        if isinstance(node, yaml.MappingNode):
            pairs = [(k, v) for k, v in node.value if k.value == str(seg)]
            if not pairs:
                break
            key, node = pairs[-1]  # the last of duplicate keys wins, as when constructing
            where, line = where + _key(seg), _line(key)
        elif isinstance(node, yaml.SequenceNode) and isinstance(seg, int) and seg < len(node.value):
            node = node.value[seg]
            where, line = f"{where}[{seg}]", _line(node)
        else:
            break
    return where, line


def _duplicate_keys(node: yaml.Node | None, where: str = "$") -> Iterator[tuple[str, int, str]]:
    """(where, line, key) of each key repeated in a mapping; YAML would silently keep the last.

    Walks every path, so only after _check_size has bounded the expanded tree.
    """
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue  # a list or mapping as a key: construction refuses it, with its line
            if key.value in seen:
                yield where + _key(key.value), _line(key), key.value
            seen.add(key.value)
            yield from _duplicate_keys(value, where + _key(key.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, f"{where}[{i}]")


# Bounds on a document once its aliases are expanded: far above any real configuration, far
# below what hangs a walk (a "billion laughs" file is a few lines that expand to 10**9 nodes).
MAX_NODES = 100_000
MAX_DEPTH = 64


class _TooBig(yaml.YAMLError):
    """A document too large or too deep once its aliases are expanded."""


def _check_size(node: yaml.Node | None) -> None:
    """Raise _TooBig unless the expanded tree has at most MAX_NODES nodes and MAX_DEPTH levels
    (yaml.YAMLError when an alias cycle makes it infinite).

    Each node is measured once (memoised) and counted once per use, so this costs the size of
    the composed graph, not of its expansion; it runs before anything walks every path.
    """
    measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, height)
    open_: set[int] = set()

    def measure(n: yaml.Node, depth: int) -> tuple[int, int]:
        if id(n) in open_:
            raise yaml.YAMLError("an alias refers to a node that contains it")
        if id(n) not in measured:
            if depth > MAX_DEPTH:
                raise _TooBig(f"nested more than {MAX_DEPTH} levels deep")
            open_.add(id(n))
            children: list[yaml.Node] = []
            if isinstance(n, yaml.MappingNode):
                children = [c for pair in n.value for c in pair]
            elif isinstance(n, yaml.SequenceNode):
                children = n.value
            parts = [measure(c, depth + 1) for c in children]
            open_.discard(id(n))
            measured[id(n)] = (
                1 + sum(p[0] for p in parts),
                1 + max((p[1] for p in parts), default=0),
            )
        size, height = measured[id(n)]
        if depth + height - 1 > MAX_DEPTH:
            raise _TooBig(f"nested more than {MAX_DEPTH} levels deep")
        return size, height

    if node is not None and measure(node, 1)[0] > MAX_NODES:
        raise _TooBig(
            f"its anchors and aliases expand to more than {MAX_NODES:,} nodes "
            "(a billion-laughs bomb?)"
        )


def _parse(text: str) -> tuple[yaml.Node | None, Any, list[tuple[str, int, str]]]:
    """(node tree, data, duplicate keys) of one YAML document; raises yaml.YAMLError."""
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:  # the composer recurses once per level
            raise _TooBig(f"nested more than {MAX_DEPTH} levels deep") from None
        _check_size(node)
        dups = list(_duplicate_keys(node))  # before constructing: merge keys rewrite the tree
        return node, loader.construct_document(node) if node is not None else None, dups
    finally:
        loader.dispose()


def _read(root: Path, file: Path, given: bytes | None = None) -> tuple[_Doc | None, list[Problem]]:
    """Parse one file (or `given`, its bytes as already read); a YAML error is a Problem
    with the line of its mark."""
    rel = file.relative_to(root).as_posix()
    try:
        raw = given if given is not None else file.read_bytes()
        node, data, dups = _parse(raw.decode("utf-8"))
    except OSError as exc:
        reason = f"cannot be read: {exc.strerror or exc}"
        return None, [Problem(path=rel, line=None, where="", reason=reason)]
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        reason = (
            f"is not UTF-8 text (byte 0x{byte:02x} at offset {exc.start}); is it a binary file?"
        )
        return None, [Problem(path=rel, line=None, where="", reason=reason)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = (
            f"{exc.context} {exc.problem}" if str(exc.problem).startswith("but ") else exc.problem
        )
        return None, [Problem(path=rel, line=line, where="", reason=f"invalid YAML: {what}")]
    except _TooBig as exc:
        return None, [Problem(path=rel, line=None, where="", reason=str(exc))]
    except yaml.YAMLError as exc:  # a ReaderError (a character YAML forbids)
        reason = f"invalid YAML: {str(exc).splitlines()[0]}"
        return None, [Problem(path=rel, line=None, where="", reason=reason)]
    problems = [
        Problem(path=rel, line=line, where=where, reason=f"duplicate key {key!r}")
        for where, line, key in dups
    ]
    return _Doc(path=rel, data=data, node=node), problems


# ---------------------------------------------------------------- flow shorthand


def _expand(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[int, _Origin], list[Found]]:
    """The list form of a schema-valid factory; `flow:` steps take their states from the flow."""
    if "flow" not in data:
        return dict(data), {}, []
    flow: list[str] = data["flow"]
    bodies: Mapping[str, Any] = data["steps"]
    found = list(_check_flow(flow, bodies))
    steps: list[dict[str, Any]] = []
    origins: dict[int, _Origin] = {}
    previous: str | None = data["state"]["initial"]
    for i, step_id in enumerate(flow if not found else ()):
        body = dict(bodies[step_id] or {})
        from_states, to_state = body.pop("from_states", None), body.pop("to_state", None)
        origins[i] = _Origin(
            step_id=step_id, implicit_from=from_states is None, implicit_to=to_state is None
        )
        if to_state is None and i == len(flow) - 1:
            to_state = data["state"]["terminal"][0]
        elif to_state is None:
            found.append((("steps", step_id), f"flow step {step_id!r} needs to_state"))
        steps.append(
            {"id": step_id, "from_states": from_states or [previous], "to_state": to_state}
        )
        steps[-1].update(body)
        previous = to_state
    expanded = {k: (steps if k == "steps" else v) for k, v in data.items() if k != "flow"}
    return expanded, origins, found


def _check_flow(flow: Sequence[str], bodies: Mapping[str, Any]) -> Iterator[Found]:
    """Every flow entry has one body and every body is in the flow."""
    for k, step_id in enumerate(flow):
        if step_id in flow[:k]:
            yield ("flow", k), f"flow names step {step_id!r} twice"
        elif step_id not in bodies:
            yield ("flow", k), f"flow names step {step_id!r} but steps: has no entry for it"
    for step_id, body in bodies.items():
        if step_id not in flow:
            yield ("steps", step_id), f"step {step_id!r} is not in flow:"
        elif isinstance(body, Mapping) and "id" in body:
            yield ("steps", step_id, "id"), "a flow step takes its id from its key under steps:"


# ---------------------------------------------------------------- the pipeline


@dataclass(frozen=True, slots=True, kw_only=True)
class Loaded:
    """The outcome of the pipeline: a Config, the list-form documents it was built from, and
    what rebuilds it without YAML (freq.config's cache): the settings document and, per
    factory, its path, list form and step lines."""

    config: Config
    expanded: Mapping[str, dict[str, Any]]
    settings: Any = None
    factories: tuple[tuple[str, dict[str, Any], tuple[int, ...]], ...] = ()


def load(root: Path, contents: Mapping[str, bytes] | None = None) -> Loaded:
    """The whole pipeline; raises ConfigError with every problem of every file, sorted.

    `contents` (relative path → bytes) are the files as already read: the pipeline judges
    exactly those bytes (freq.config keys its cache by them)."""
    problems: list[Problem] = []
    docs: list[_Doc] = []
    files = find_config_files(root) if contents is None else tuple(root / r for r in contents)
    given = contents or {}
    for file in files:
        doc, found = _read(root, file, given.get(file.relative_to(root).as_posix()))
        problems += found
        docs += [doc] if doc is not None else []
    settings = _load_settings([d for d in docs if _is_settings(d)], problems)
    factory_docs = [d for d in docs if not _is_settings(d)]
    built: list[tuple[Factory, _Source, dict[str, Any]]] = []
    for doc in factory_docs:
        one, found = _load_factory(doc, settings or Settings())
        problems += found
        built += [one] if one is not None else []
    problems += _check_across(
        factory_docs,
        [(f, source) for f, source, _ in built],
        None if settings is None else settings.agents,
    )
    if problems:
        order = {file.relative_to(root).as_posix(): k for k, file in enumerate(files)}
        raise ConfigError(sorted(problems, key=lambda p: (order[p.path], p.line or 0)))
    config = Config(
        root=str(root.resolve()),
        settings=settings or Settings(),
        factories=tuple(f for f, _, _ in built),
    )
    settings_docs = [d for d in docs if _is_settings(d)]
    return Loaded(
        config=config,
        expanded={f.path: data for f, _, data in built},
        settings=settings_docs[0].data if settings_docs else None,
        factories=tuple(
            (f.path, data, tuple(s.line or 0 for s in f.steps)) for f, _, data in built
        ),
    )


def _is_settings(doc: _Doc) -> bool:
    return Path(doc.path).name in SETTINGS_NAMES


def _load_factory(
    doc: _Doc, settings: Settings
) -> tuple[tuple[Factory, _Source, dict[str, Any]] | None, list[Problem]]:
    """Schema-check, expand and build one factory file: (factory, source, list form) or None."""
    found_schema = violations(factory_validator(), doc.data)
    if found_schema:
        return None, [_Source(doc=doc).problem(v.path, v.reason) for v in found_schema]
    data, origins, found_flow = _expand(doc.data)
    source = _Source(doc=doc, origins=origins)
    if found_flow:
        return None, [source.problem(at, reason) for at, reason in found_flow]
    lines = [source.line(("steps", i)) for i in range(len(data["steps"]))]
    factory = build_factory(data, path=doc.path, step_lines=lines, settings=settings)
    return (factory, source, data), []


def _load_settings(docs: Sequence[_Doc], problems: list[Problem]) -> Settings | None:
    """Settings from frequency.yaml (defaults when there is none); None when it is invalid.

    Appends the file's problems to `problems`.
    """
    if not docs:
        return Settings()
    source = _Source(doc=docs[0])
    problems += [
        Problem(
            path=d.path,
            line=1,
            where="",
            reason=f"a second settings file: keep only {docs[0].path}",
        )
        for d in docs[1:]
    ]
    found = [(v.path, v.reason) for v in violations(settings_validator(), docs[0].data)]
    settings = build_settings(docs[0].data) if not found else None
    if settings is not None:
        found += check_settings(settings)
    problems += [source.problem(at, reason) for at, reason in found]
    return settings if not found else None


def _check_across(
    docs: Sequence[_Doc],
    built: Sequence[tuple[Factory, _Source]],
    agents: Mapping[str, AgentDef] | None,
) -> list[Problem]:
    """Duplicate factory ids across files, then every built factory's semantic checks
    (`agents`: the named agents, None when frequency.yaml did not build)."""
    problems: list[Problem] = []
    owners: dict[str, str] = {}
    for doc in docs:
        fid = doc.data.get("factory_id") if isinstance(doc.data, dict) else None
        if isinstance(fid, str) and fid in owners:
            reason = f"factory_id {fid!r} is already used by {owners[fid]}"
            problems.append(_Source(doc=doc).problem(("factory_id",), reason))
        elif isinstance(fid, str):
            owners[fid] = doc.path
    ctx = build_context(owners, [f for f, _ in built], agents)
    for f, source in built:
        problems += [source.problem(at, reason) for at, reason in check_factory(f, ctx)]
    return problems


def dump_yaml(doc: Any) -> str:
    """Render a plain document as block YAML in key order (for `validate --expand`)."""
    return str(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))


def parse_yaml(text: str) -> Any:
    """The data of one YAML document that is not configuration (a CI workflow that `init
    --analyse` reads), in the same strict dialect and bounds as `.frequency/` files; raises
    ValueError with a one-line reason (`invalid YAML: ... (line 3)`), never anything else."""
    try:
        return _parse(text)[1]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1})" if mark is not None else ""
        what = (
            f"{exc.context} {exc.problem}" if str(exc.problem).startswith("but ") else exc.problem
        )
        raise ValueError(f"invalid YAML: {what}{where}") from None
    except _TooBig as exc:
        raise ValueError(str(exc)) from None
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML: {str(exc).splitlines()[0]}") from None
