"""The canonical JSON form of a funnel: the definition syntax itself, written one way.

A funnel version stores this form; ``flask funnels export`` writes it back out as
YAML. Durations are strings (``2d``), ``where`` uses bare values for ``eq``, ``exit``
is always a list, days read like ``mon-fri``. Keys that hold their default are left
out, except the contract's own (``priority``, ``as`` and a stage's ``key``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.engine.definition import validate_data
from app.engine.durations import format_days, format_duration, format_time
from app.engine.model import Condition, Exit, FunnelDef, SendWindow, Stage, Transition, Trigger

_DEFAULT_WINDOW = SendWindow()


def funnel_to_dict(funnel: FunnelDef) -> dict[str, Any]:
    """Return the canonical, JSON-able definition of ``funnel``.

    Raises ValueError for what the syntax cannot say (a duration of seconds, the
    same operator twice on one property), which only hand-built FunnelDefs have.
    """
    data: dict[str, Any] = {
        "key": funnel.key,
        "name": funnel.name,
        "topic": funnel.topic,
        "priority": funnel.priority,
        "entry": _trigger(funnel.entry),
    }
    if funnel.exits:
        data["exit"] = [_exit(goal) for goal in funnel.exits]
    if funnel.caps:
        data["caps"] = [{"max": cap.max, "per": format_duration(cap.per)} for cap in funnel.caps]
    if funnel.send_window is not None:
        data["send_window"] = _send_window(funnel.send_window)
    data["stages"] = [_stage(stage) for stage in funnel.stages]
    data.update(_extensions(funnel))
    return data


def funnel_from_dict(data: Mapping[str, Any]) -> FunnelDef:
    """Return the FunnelDef of a stored definition; raise ValueError if its shape is wrong.

    Only the shape is checked: the version was validated in full when it was saved,
    and it must keep loading even if a later release adds a semantic check.
    """
    result = validate_data(data, semantics=False)
    if result.funnel is None:
        raise ValueError("; ".join(f"{p.field}: {p.message}" for p in result.problems))
    return result.funnel


def _extensions(funnel: FunnelDef) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    if funnel.reentry:
        extras["reentry"] = True
    if funnel.on_cap != "defer":
        extras["on_cap"] = funnel.on_cap
    if not funnel.tracking:
        extras["tracking"] = False
    if funnel.moved:
        extras["moved"] = dict(funnel.moved)
    if funnel.description:
        extras["description"] = funnel.description
    return extras


def _trigger(trigger: Trigger) -> dict[str, Any]:
    if trigger.segment is not None:
        return {"segment": trigger.segment}
    data: dict[str, Any] = {"on": trigger.on}
    if trigger.where:
        data["where"] = where_to_dict(trigger.where)
    return data


def _exit(goal: Exit) -> dict[str, Any]:
    return {**_trigger(Trigger(goal.on, goal.where, goal.segment)), "as": goal.as_}


def _send_window(window: SendWindow) -> dict[str, Any]:
    data = {
        "days": format_days(window.days),
        "from": format_time(window.start),
        "to": format_time(window.end, end=True),
        "timezone": window.timezone,
    }
    if window.fallback_timezone != _DEFAULT_WINDOW.fallback_timezone:
        data["fallback_timezone"] = window.fallback_timezone
    return data


def _stage(stage: Stage) -> dict[str, Any]:
    data: dict[str, Any] = {"key": stage.key}
    if stage.emails:
        data["emails"] = [
            {"template": email.template, "after": format_duration(email.after)}
            for email in stage.emails
        ]
    if stage.transitions:
        data["transitions"] = [_transition(t) for t in stage.transitions]
    return data


def _transition(transition: Transition) -> dict[str, Any]:
    if transition.on is not None:
        return {**_trigger(transition.on), "to": transition.to}
    if transition.segment is not None:
        return {"if": {"segment": transition.segment}, "to": transition.to}
    if transition.after is None:
        raise ValueError(f"the transition to '{transition.to}' has neither 'on' nor 'after'")
    return {"after": format_duration(transition.after), "to": transition.to}


def where_to_dict(conditions: tuple[Condition, ...]) -> dict[str, Any]:
    """Return the `where` mapping for ``conditions``: a bare value for a lone ``eq``."""
    by_path: dict[str, dict[str, Any]] = {}
    for condition in conditions:
        operators = by_path.setdefault(condition.path, {})
        if condition.op in operators:
            raise ValueError(f"'{condition.path}' has two '{condition.op}' conditions")
        value = condition.value
        operators[condition.op] = list(value) if isinstance(value, (list, tuple)) else value
    return {path: ops["eq"] if list(ops) == ["eq"] else ops for path, ops in by_path.items()}
