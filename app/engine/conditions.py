"""`where` conditions: matching event properties, and spotting ones that never match.

Matching runs on whatever JSON a client sent, so it never raises: a missing
property or a value of the wrong type is simply "no match".
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from app.engine.model import OPERATORS, Condition

CONTACT_PREFIX = "contact."
_MISSING = object()

# How each comparison reads in a sentence about a property.
_BOUND_WORDS = {"gt": "above", "gte": "at least", "lt": "below", "lte": "at most"}


def is_number(value: object) -> bool:
    """True for ints and floats; False for bools, which Python counts as ints."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def matches(
    conditions: Sequence[Condition],
    properties: Mapping[str, Any],
    contact: Mapping[str, Any] | None = None,
) -> bool:
    """Return True when every condition holds for these event properties and contact."""
    return all(_holds(c, _lookup(c.path, properties, contact)) for c in conditions)


def _lookup(path: str, properties: Mapping[str, Any], contact: Mapping[str, Any] | None) -> Any:
    if path.startswith(CONTACT_PREFIX):
        return _dig(contact, path[len(CONTACT_PREFIX) :])
    return _dig(properties, path)


def value_at(data: Mapping[str, Any], path: str) -> Any:
    """The value at a (dotted) property path, or None where there is none."""
    found = _dig(data, path)
    return None if found is _MISSING else found


def _dig(data: Any, path: str) -> Any:
    """Read ``path`` from nested mappings; a literal key with dots wins over nesting."""
    if not isinstance(data, Mapping):
        return _MISSING
    if path in data:
        return data[path]
    head, dot, rest = path.partition(".")
    if not dot or head not in data:
        return _MISSING
    return _dig(data[head], rest)


def _holds(condition: Condition, actual: Any) -> bool:
    op, expected = condition.op, condition.value
    if actual is _MISSING:
        return op == "ne"
    try:
        if op == "eq":
            return _same(actual, expected)
        if op == "ne":
            return not _same(actual, expected)
        if op == "in":
            return isinstance(expected, (list, tuple)) and any(_same(actual, v) for v in expected)
        if op == "contains":
            return _contains(actual, expected)
        if op in _BOUND_WORDS:
            return is_number(actual) and is_number(expected) and _compare(op, actual, expected)
    except Exception:  # noqa: BLE001 - odd client data must never break matching
        return False
    return False


def _same(a: Any, b: Any) -> bool:
    # Python says True == 1; a marketer writing `paid: true` does not mean `paid: 1`.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    return bool(a == b)


def _contains(actual: Any, expected: Any) -> bool:
    if isinstance(actual, str):
        return isinstance(expected, str) and expected in actual
    if isinstance(actual, (list, tuple)):
        return any(_same(item, expected) for item in actual)
    return False


def _compare(op: str, actual: float, expected: float) -> bool:
    if op == "gt":
        return actual > expected
    if op == "gte":
        return actual >= expected
    if op == "lt":
        return actual < expected
    return actual <= expected


def parse_where(raw: Mapping[str, Any]) -> tuple[Condition, ...]:
    """Return the conditions a `where` mapping stands for, in the order written.

    A plain value means ``eq``; an operator map gives one condition per operator.
    ``in`` lists become tuples so that conditions stay hashable. Raises ValueError
    for an operator that does not exist (the schema catches that first in files).
    """
    conditions: list[Condition] = []
    for path, spec in raw.items():
        if not isinstance(spec, Mapping):
            conditions.append(Condition(str(path), "eq", _freeze(spec)))
            continue
        for op, value in spec.items():
            if op not in OPERATORS:
                raise ValueError(
                    f"'{op}' is not a way to compare; use one of {', '.join(OPERATORS)}"
                )
            conditions.append(Condition(str(path), str(op), _freeze(value)))
    return tuple(conditions)


def _freeze(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def describe(value: Any) -> str:
    """Write a condition value the way it would appear in a funnel file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(describe(v) for v in value) + "]"
    return str(value)


def impossible(conditions: Iterable[Condition]) -> list[str]:
    """Return plain-words reasons why these conditions (all together) can never match."""
    by_path: dict[str, list[Condition]] = {}
    for condition in conditions:
        by_path.setdefault(condition.path, []).append(condition)
    reasons: list[str] = []
    for path, group in by_path.items():
        reasons.extend(_path_reasons(path, group))
    return reasons


def _path_reasons(path: str, group: list[Condition]) -> list[str]:
    name = f"'{path}'"
    eqs = _unique(c.value for c in group if c.op == "eq")
    reasons: list[str] = []
    if len(eqs) > 1:
        reasons.append(f"{name} cannot equal both {_join(eqs)}")
    reasons.extend(_range_reasons(name, group))
    for value in eqs:
        reasons.extend(_eq_reasons(name, value, group))
    reasons.extend(_in_reasons(name, group))
    return reasons


def _range_reasons(name: str, group: list[Condition]) -> list[str]:
    """An empty numeric range: the tightest lower bound sits above the tightest upper."""
    lower = _tightest([c for c in group if c.op in ("gt", "gte") and is_number(c.value)], True)
    upper = _tightest([c for c in group if c.op in ("lt", "lte") and is_number(c.value)], False)
    if lower is None or upper is None:
        return []
    if lower.value < upper.value:
        return []
    if lower.value == upper.value and lower.op == "gte" and upper.op == "lte":
        return []
    return [f"{name} cannot be both {_bound(lower)} and {_bound(upper)}"]


def _tightest(bounds: list[Condition], lower: bool) -> Condition | None:
    if not bounds:
        return None

    # Highest lower bound / lowest upper bound; on a tie the strict one is tighter.
    def key(c: Condition) -> tuple[float, bool]:
        strict = c.op in ("gt", "lt")
        return (c.value, strict) if lower else (-c.value, strict)

    return max(bounds, key=key)


def _eq_reasons(name: str, value: Any, group: list[Condition]) -> list[str]:
    reasons = []
    if any(c.op == "ne" and _same(c.value, value) for c in group):
        reasons.append(f"{name} cannot both equal {describe(value)} and not equal it")
    for bound in (c for c in group if c.op in _BOUND_WORDS):
        if not (is_number(value) and _compare(bound.op, value, bound.value)):
            reasons.append(f"{name} cannot equal {describe(value)} and also be {_bound(bound)}")
            break
    for allowed in (c.value for c in group if c.op == "in" and c.value):
        if isinstance(allowed, (list, tuple)) and not any(_same(value, v) for v in allowed):
            reasons.append(
                f"{name} must equal {describe(value)}, which is not one of {describe(allowed)}"
            )
    return reasons


def _in_reasons(name: str, group: list[Condition]) -> list[str]:
    lists = [c.value for c in group if c.op == "in" and isinstance(c.value, (list, tuple))]
    if any(not values for values in lists):
        return [f"{name} must be one of an empty list, so nothing can match"]
    common = list(lists[0]) if lists else []
    for values in lists[1:]:
        common = [v for v in common if any(_same(v, w) for w in values)]
    if len(lists) > 1 and not common:
        return [f"{name} must be one of {' and also one of '.join(describe(v) for v in lists)}"]
    return []


def _bound(condition: Condition) -> str:
    return f"{_BOUND_WORDS[condition.op]} {describe(condition.value)}"


def _unique(values: Iterable[Any]) -> list[Any]:
    found: list[Any] = []
    for value in values:
        if not any(_same(value, seen) for seen in found):
            found.append(value)
    return found


def _join(values: list[Any]) -> str:
    described = [describe(v) for v in values]
    return ", ".join(described[:-1]) + " and " + described[-1]


# Attribute kinds, as `attribute_kind` names them and `unseen_kinds` compares them.
_KIND_WORDS = {"text": "text", "number": "a number", "boolean": "true or false", "list": "a list"}


def attribute_kind(value: Any) -> str:
    """The kind of a contact attribute's value: text, number, boolean, list or other."""
    if isinstance(value, bool):
        return "boolean"
    if is_number(value):
        return "number"
    if isinstance(value, str):
        return "text"
    return "list" if isinstance(value, (list, tuple)) else "other"


def unseen_kinds(
    conditions: Iterable[Condition], kinds: Mapping[str, Collection[str]]
) -> list[tuple[Condition, str]]:
    """Conditions on ``contact.<attribute>`` that cannot match any value of the kinds
    seen so far for that attribute (``kinds``: attribute -> kinds), with the reason.

    Attributes with no known kinds are not judged: they may simply be new.
    """
    found = []
    for condition in conditions:
        name = condition.path.removeprefix(CONTACT_PREFIX).split(".")[0]
        seen = kinds.get(name) if condition.path.startswith(CONTACT_PREFIX) else None
        wanted = _wanted_kinds(condition)
        if not seen or wanted is None or wanted & set(seen):
            continue
        have = " or ".join(_KIND_WORDS.get(k, k) for k in sorted(seen))
        want = " or ".join(_KIND_WORDS.get(k, k) for k in sorted(wanted))
        found.append(
            (condition, f"'{condition.path}' is {have} in every contact so far, never {want}")
        )
    return found


def _wanted_kinds(condition: Condition) -> set[str] | None:
    """The attribute kinds a condition can match; None when any kind may match (ne)."""
    op, value = condition.op, condition.value
    if op in _BOUND_WORDS:
        return {"number"}
    if op == "contains":
        return {"text", "list"} if isinstance(value, str) else {"list"}
    if op == "eq":
        return {attribute_kind(value)}
    if op == "in" and isinstance(value, (list, tuple)):
        return {attribute_kind(v) for v in value}
    return None
