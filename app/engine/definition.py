"""Parse and validate funnel definitions (YAML or JSON) into a ``FunnelDef``.

Validation has three layers, reported in this order and all at once:
1. the YAML itself (syntax, duplicate keys), with the line of each mistake;
2. the shape, checked against ``funnel.schema.json`` (Draft 2020-12), each error
   mapped back to the line of the node it is about and put in plain words;
3. the meaning (``checks.semantic_findings``), once the shape is right and a
   FunnelDef exists.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from app.engine.checks import Finding, PathT, as_list, kind, schema_findings, semantic_findings
from app.engine.conditions import parse_where
from app.engine.durations import parse_day, parse_days, parse_duration, parse_time
from app.engine.model import (
    Cap,
    EmailStep,
    Exit,
    FunnelDef,
    SendWindow,
    Stage,
    Transition,
    Trigger,
)

FILE_FIELD = "(file)"  # the field named by problems with the file as a whole
MAX_NODES = 20_000  # a real funnel has a few hundred
MAX_DEPTH = 30
MAX_TEXT = 100_000  # characters (~1 s to load); the six-step example is about 2,000
TOO_BIG = "the definition is too large or nests too deeply to be a funnel"


class _TooBigError(Exception):
    pass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition, located for the marketer."""

    line: int | None  # 1-based; None when the definition did not come from text
    field: str  # dotted path, e.g. "stages[1].transitions[0].to"
    message: str
    stage: str | None = None  # the stage key, when the problem is about a stage

    def format(self, filename: str) -> str:
        """Return ``file:line: field: message`` (``file: field: message`` without a line)."""
        where = filename if self.line is None else f"{filename}:{self.line}"
        return f"{where}: {self.field}: {self.message}"


@dataclass(frozen=True)
class ValidationResult:
    funnel: FunnelDef | None  # None whenever there are problems
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_text(
    text: str,
    *,
    templates: Collection[str] | None = None,
    attribute_kinds: Mapping[str, Collection[str]] | None = None,
) -> ValidationResult:
    """Validate a YAML or JSON definition; JSON goes through the YAML loader to get lines.

    ``templates`` is the set of email template names that exist (None: don't check);
    ``attribute_kinds`` the kinds of value seen per contact attribute (None: don't check).
    """
    loaded = load_source(text, "funnel", "key, name, topic, entry and stages")
    if isinstance(loaded, Problem):
        return ValidationResult(None, (loaded,))
    source, early = loaded
    return _validate(source, early, templates, attribute_kinds=attribute_kinds)


def load_source(text: str, noun: str, required: str) -> Problem | tuple[Source, list[Finding]]:
    """Load one YAML or JSON document describing one ``noun`` (a funnel, a segment):
    its Source and the duplicate keys found, or the Problem that stops it being read.

    ``required`` names the fields an empty file is missing, for the message.
    """
    loaded = _load_yaml(text, noun)
    if isinstance(loaded, Problem):
        return loaded
    document, duplicates = loaded
    if document is None:
        return Problem(None, FILE_FIELD, f"the file is empty: a {noun} needs at least {required}")
    if not isinstance(document, Mapping):
        found = kind(document)
        return Problem(
            _line_of_root(document) or 1,
            FILE_FIELD,
            f"the file should describe one {noun} as fields (key: value), but it holds {found}",
        )
    try:
        source = Source.from_document(document)
    except _TooBigError:
        return Problem(None, FILE_FIELD, TOO_BIG)
    return source, [_duplicate_finding(source, duplicate) for duplicate in duplicates]


def validate_data(
    data: object, *, templates: Collection[str] | None = None, semantics: bool = True
) -> ValidationResult:
    """Validate an already-parsed definition (a dict from JSON); problems carry no lines.

    Anything but a mapping (a JSON body that is a list, say) is a problem, not a crash.
    ``semantics=False`` checks the shape only: for stored versions, which were checked
    in full when saved and must still load if a later release adds a check.
    """
    if not isinstance(data, Mapping):
        return _fail(None, f"a funnel is a set of fields (key: value), not {kind(data)}")
    try:
        source = Source.from_document(data)
    except _TooBigError:
        return _fail(None, TOO_BIG)
    return _validate(source, [], templates, semantics=semantics)


def parse_text(text: str, *, templates: Collection[str] | None = None) -> FunnelDef:
    """Return the FunnelDef of a valid definition; raise ValueError listing the problems."""
    result = validate_text(text, templates=templates)
    if result.funnel is None:
        raise ValueError("\n".join(p.format("definition") for p in result.problems))
    return result.funnel


def _fail(line: int | None, message: str) -> ValidationResult:
    return ValidationResult(None, (Problem(line, FILE_FIELD, message),))


def _validate(
    source: Source,
    early: list[Finding],
    templates: Collection[str] | None,
    *,
    semantics: bool = True,
    attribute_kinds: Mapping[str, Collection[str]] | None = None,
) -> ValidationResult:
    shape = early + list(schema_findings(source.data))
    if shape:  # without the right shape there is no FunnelDef to check the meaning of
        return ValidationResult(None, source.problems(shape))
    funnel = build(source.data)
    meaning = (
        semantic_findings(funnel, source.data, templates, attribute_kinds=attribute_kinds)
        if semantics
        else []
    )
    if meaning:
        return ValidationResult(None, source.problems(meaning))
    return ValidationResult(funnel, ())


# --- Where things are ---------------------------------------------------------------


class Source:
    """The definition as plain JSON-like data, plus each node's line and document order."""

    def __init__(
        self,
        data: dict[str, Any],
        places: dict[PathT, tuple[int, int | None]],
        paths: dict[int, PathT],
    ) -> None:
        self.data = data
        self._places = places  # path -> (order in the document, 1-based line or None)
        self._paths = paths  # id() of a loaded mapping -> its path, to place duplicate keys

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Source:
        places: dict[PathT, tuple[int, int | None]] = {}
        paths: dict[int, PathT] = {}
        data = _plain(document, (), places, paths, _line_of_root(document))
        return cls(data, places, paths)

    def path_of(self, node: object) -> PathT | None:
        return self._paths.get(id(node))

    def line(self, path: PathT) -> int | None:
        return self._place(path)[1]

    def _place(self, path: PathT) -> tuple[int, int | None]:
        # A missing field has no node of its own: point at the nearest one that exists.
        while path not in self._places and path:
            path = path[:-1]
        return self._places.get(path, (0, None))

    def problems(self, findings: Iterable[Finding]) -> tuple[Problem, ...]:
        """Return the findings as Problems in document order, without repeats."""
        unique = sorted(dict.fromkeys(findings), key=self._sort_key)
        return tuple(
            Problem(
                f.line or self.line(f.path),
                field_name(f.path),
                f.message,
                f.stage or self.stage_of(f.path),
            )
            for f in unique
        )

    def _sort_key(self, finding: Finding) -> tuple[int, int]:
        order, line = self._place(finding.path)
        return (finding.line or line or 0, order)

    def stage_of(self, path: PathT) -> str | None:
        """Return the key of the stage that ``path`` lies in, if it has a usable one."""
        if len(path) < 2 or path[0] != "stages" or not isinstance(path[1], int):
            return None
        stages = self.data.get("stages")
        stage = stages[path[1]] if isinstance(stages, list) and path[1] < len(stages) else None
        key = stage.get("key") if isinstance(stage, dict) else None
        return key if isinstance(key, str) else None


def field_name(path: PathT) -> str:
    """Return ``"stages[1].transitions[0].to"`` for ``("stages", 1, "transitions", 0, "to")``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or FILE_FIELD


def _plain(
    node: Any,
    path: PathT = (),
    places: dict[PathT, tuple[int, int | None]] | None = None,
    paths: dict[int, PathT] | None = None,
    line: int | None = None,
) -> Any:
    """Return ``node`` as plain dicts, lists and scalars, recording where each node sits.

    ruamel's round-trip types subclass int, float and str; plain values keep the
    schema and the engine from tripping over them.
    """
    places = {} if places is None else places
    paths = {} if paths is None else paths
    # Aliases can nest a small file into a huge (or endless) tree: stop early.
    if len(places) >= MAX_NODES or len(path) > MAX_DEPTH:
        raise _TooBigError
    places[path] = (len(places), line)
    if isinstance(node, Mapping):
        paths[id(node)] = path
        return {
            str(k): _plain(v, (*path, str(k)), places, paths, _child_line(node, k, line))
            for k, v in node.items()
        }
    if isinstance(node, (list, tuple)):
        return [
            _plain(v, (*path, i), places, paths, _child_line(node, i, line))
            for i, v in enumerate(node)
        ]
    return _scalar(node)


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if type(value).__name__ == "ScalarBoolean":  # ruamel's anchored booleans are ints
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


def _child_line(node: Any, key: Any, parent_line: int | None) -> int | None:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        spot = lc.item(key) if isinstance(node, list) else lc.key(key)
        return int(spot[0]) + 1
    except (KeyError, IndexError, TypeError):
        # Merged (<<) keys and some tagged nodes (!!omap) have no position of their own.
        return parent_line


def _line_of_root(document: Any) -> int | None:
    line = getattr(getattr(document, "lc", None), "line", None)
    return line + 1 if isinstance(line, int) else None


# --- YAML -----------------------------------------------------------------------------


class _RecordingConstructor(RoundTripConstructor):
    """Keeps the first of duplicate keys and records the others instead of stopping."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.duplicates: list[tuple[Any, Any, int]] = []

    def check_mapping_key(
        self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any
    ) -> bool:
        if key in mapping:
            self.duplicates.append((mapping, key, key_node.start_mark.line + 1))
            return False
        return True


# An unquoted 2024-01-31 is the text the marketer typed, not a date (and 2024-02-30
# would otherwise stop the loader with a bare "day is out of range").
_RecordingConstructor.add_constructor(
    "tag:yaml.org,2002:timestamp", _RecordingConstructor.construct_yaml_str
)


Loaded = tuple[Any, list[tuple[Any, Any, int]]]


def _load_yaml(text: str, noun: str = "funnel") -> Problem | Loaded:
    """Return the document and its duplicate keys, or the Problem that stopped loading."""
    if len(text) > MAX_TEXT or _flow_depth(text) > 2 * MAX_DEPTH:
        # ruamel takes seconds over a few kilobytes of [[[[...: refuse before it starts.
        return Problem(None, FILE_FIELD, TOO_BIG)
    yaml = YAML(typ="rt")
    yaml.Constructor = _RecordingConstructor
    try:
        document = yaml.load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = None if mark is None else mark.line + 1
        return Problem(line, FILE_FIELD, _yaml_message(error, noun))
    except YAMLError as error:
        return Problem(None, FILE_FIELD, f"the file is not valid YAML or JSON: {error}")
    except RecursionError:
        return Problem(None, FILE_FIELD, TOO_BIG)
    except (ValueError, TypeError):
        # Explicit tags (!!int x, !!omap ...) fail inside the constructor, without a mark.
        message = "a value has a YAML tag (like !!int) that does not fit it: remove the tag"
        return Problem(None, FILE_FIELD, message)
    return document, yaml.constructor.duplicates


def _flow_depth(text: str) -> int:
    """Return how deep [ and { nest, counting those in quotes too (a cheap upper bound)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}" and depth:
            depth -= 1
    return deepest


def _yaml_message(error: MarkedYAMLError, noun: str) -> str:
    problem = str(error.problem or error.context or "it cannot be read").strip()
    if "'\\t'" in problem:
        return "tabs cannot indent YAML: use spaces"
    if "single document" in f"{error.context} {problem}":
        return f"the file holds more than one document (---): keep one {noun} per file"
    return f"the file is not valid YAML or JSON: {problem}"


def _duplicate_finding(source: Source, duplicate: tuple[Any, Any, int]) -> Finding:
    mapping, key, line = duplicate
    path = (*(source.path_of(mapping) or ()), str(key))
    first = source.line(path)
    seen = f" (first on line {first})" if first else ""
    return Finding(path, f"'{key}' is written twice{seen}: keep one", line=line)


# --- Building the FunnelDef from data the schema accepted -----------------------------


def build(data: Mapping[str, Any]) -> FunnelDef:
    """Return the FunnelDef of a definition that passed the schema (defaults filled in)."""
    return FunnelDef(
        key=data["key"],
        name=data["name"],
        topic=data["topic"],
        entry=_trigger(data["entry"]),
        stages=tuple(_stage(raw) for raw in data["stages"]),
        exits=tuple(_exit(raw) for raw in as_list(data.get("exit"))),
        caps=tuple(Cap(int(c["max"]), parse_duration(c["per"])) for c in data.get("caps", [])),
        send_window=_send_window(data["send_window"]) if "send_window" in data else None,
        priority=int(data.get("priority", 0)),
        reentry=data.get("reentry", False),
        on_cap=data.get("on_cap", "defer"),
        tracking=data.get("tracking", True),
        moved=dict(data.get("moved", {})),
        description=str(data.get("description", "")),
    )


def _trigger(raw: Mapping[str, Any]) -> Trigger:
    if "segment" in raw:
        return Trigger("", segment=raw["segment"])
    return Trigger(raw["on"], parse_where(raw.get("where", {})))


def _exit(raw: Mapping[str, Any]) -> Exit:
    label = raw.get("as", "exited")
    if "segment" in raw:
        return Exit("", as_=label, segment=raw["segment"])
    return Exit(raw["on"], parse_where(raw.get("where", {})), label)


def _stage(raw: Mapping[str, Any]) -> Stage:
    emails = tuple(
        EmailStep(e["template"], parse_duration(e.get("after", "0m")))
        for e in raw.get("emails", [])
    )
    return Stage(raw["key"], emails, tuple(_transition(t) for t in raw.get("transitions", [])))


def _transition(raw: Mapping[str, Any]) -> Transition:
    if "on" in raw:
        return Transition(raw["to"], on=_trigger(raw))
    if "if" in raw:
        return Transition(raw["to"], segment=raw["if"]["segment"])
    return Transition(raw["to"], after=parse_duration(raw["after"]))


def _send_window(raw: Mapping[str, Any]) -> SendWindow:
    days = raw.get("days", "daily")
    return SendWindow(
        days=frozenset(map(parse_day, days)) if isinstance(days, list) else parse_days(days),
        start=parse_time(raw.get("from", "00:00")),
        end=parse_time(raw.get("to", "24:00"), end=True),
        timezone=raw.get("timezone", "contact"),
        fallback_timezone=raw.get("fallback_timezone", "UTC"),
    )
