"""Pure evaluation of `requires:` predicates over a Snapshot (SPEC §4).

Imports only the standard library and freq.model. Nothing is eval'ed: predicates are a
closed vocabulary of records. Facts that need the outside world (`command` exit codes,
`changed` paths) are gathered by the shell layer once per planning cycle and passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from freq.model import AllOf, AnyOf, Capacity, Changed, Command, Not, Predicate, SubjectState
from freq.runtime import Snapshot, Subject


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    """Whether a predicate holds, and in plain words why (or why not)."""

    holds: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """Outside-world answers for one planning cycle, keyed by the predicate record."""

    commands: Mapping[Command, bool] = field(default_factory=dict)
    changed: Mapping[tuple[Changed, str, str], bool] = field(default_factory=dict)
    # how a command that did not hold failed, when it was not a plain non-zero exit
    command_notes: Mapping[Command, str] = field(default_factory=dict)
    # branches `changed` predicates name that do not exist (None: HEAD is unborn)
    missing_branches: frozenset[str | None] = frozenset()


_NO_FACTS = Facts()
HOLDS = Verdict(holds=True)  # one value for every predicate that holds


def render_template(text: str, subject: Subject) -> str:
    """Fill `{subject}`, `{factory_id}` and `{data.KEY}` in a predicate field."""
    if text == "{subject}":  # the common case: the same name in another factory
        return subject.name
    if "{" not in text:
        return text
    out = text.replace("{subject}", subject.name).replace("{factory_id}", subject.factory)
    if "{data." not in out:
        return out
    for k, v in subject.data.items():
        out = out.replace("{data." + k + "}", v)
    return out


def evaluate(
    pred: Predicate, snap: Snapshot, subject: Subject, facts: Facts | None = None
) -> Verdict:
    """Evaluate one predicate for `subject`."""
    facts = facts or _NO_FACTS
    if isinstance(pred, SubjectState):
        return _subject_state(pred, snap, subject)
    if isinstance(pred, Capacity):
        return _capacity(pred, snap)
    if isinstance(pred, Command):
        held = facts.commands.get(pred)
        if held is None:
            return Verdict(holds=False, reasons=(f"command `{pred.run}` was not evaluated",))
        word = "exits 0" if held else facts.command_notes.get(pred, "does not exit 0")
        return Verdict(holds=held, reasons=(f"command `{pred.run}` {word}",))
    if isinstance(pred, Changed):
        key = (pred, subject.factory, subject.name)
        ch = facts.changed.get(key)
        paths = ", ".join(pred.paths)
        if pred.branch in facts.missing_branches:
            where = f"branch {pred.branch}" if pred.branch else "HEAD"
            return Verdict(holds=False, reasons=(f"changed {paths}: {where} does not exist",))
        if ch is None:
            return Verdict(holds=False, reasons=(f"changed {paths} was not evaluated",))
        word = "changed" if ch else "unchanged"
        return Verdict(holds=ch, reasons=(f"{paths} {word} since last success",))
    if isinstance(pred, AllOf):
        return _all(pred.items, snap, subject, facts)
    if isinstance(pred, AnyOf):
        verdicts = []
        for p in pred.items:
            v = evaluate(p, snap, subject, facts)
            if v.holds:
                return HOLDS
            verdicts.append(v)
        return Verdict(
            holds=False,
            reasons=("none of: " + "; ".join(r for v in verdicts for r in v.reasons),),
        )
    inner = evaluate(pred.item, snap, subject, facts)
    if inner.holds:
        return Verdict(holds=False, reasons=("not: " + "; ".join(inner.reasons or ("holds",)),))
    return HOLDS


def _all(preds: tuple[Predicate, ...], snap: Snapshot, subject: Subject, facts: Facts) -> Verdict:
    failing: list[str] = []
    for p in preds:
        v = evaluate(p, snap, subject, facts)
        if not v.holds:
            failing += v.reasons
    return HOLDS if not failing else Verdict(holds=False, reasons=tuple(failing))


def _subject_state(pred: SubjectState, snap: Snapshot, subject: Subject) -> Verdict:
    name = render_template(pred.subject, subject)
    other = snap.find(pred.factory_id, name)  # an archived one is in its final state
    where = f"{pred.factory_id}/{name}"
    if other is None:
        if pred.states:
            return Verdict(
                holds=False,
                reasons=(
                    f"requires subject_state {where} in [{', '.join(pred.states)}]: "
                    "it does not exist",
                ),
            )
        return HOLDS
    if pred.states and other.state not in pred.states:
        return Verdict(
            holds=False,
            reasons=(
                f"requires subject_state {where} in [{', '.join(pred.states)}]: "
                f"it is in [{other.state}]",
            ),
        )
    if other.state in pred.not_states:
        return Verdict(
            holds=False,
            reasons=(
                f"requires subject_state {where} not in [{', '.join(pred.not_states)}]: "
                f"it is in [{other.state}]",
            ),
        )
    return HOLDS


def _capacity(pred: Capacity, snap: Snapshot) -> Verdict:
    count = snap.count(pred.factory_id, pred.states)
    if count < pred.below:
        return HOLDS
    return Verdict(
        holds=False,
        reasons=(
            f"requires capacity {pred.factory_id} [{', '.join(pred.states)}] below {pred.below}: "
            f"{count} there",
        ),
    )


def evaluate_all(
    preds: tuple[Predicate, ...], snap: Snapshot, subject: Subject, facts: Facts | None = None
) -> Verdict:
    """Every predicate of a step's `requires:` list must hold."""
    return _all(preds, snap, subject, facts or _NO_FACTS)


def leaves(preds: Iterable[Predicate]) -> Iterator[Predicate]:
    """Every predicate in `requires:` trees that is not a combinator (all/any/not)."""
    for p in preds:
        if isinstance(p, AllOf | AnyOf):
            yield from leaves(p.items)
        elif isinstance(p, Not):
            yield from leaves((p.item,))
        else:
            yield p
