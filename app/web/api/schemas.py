"""Request and response shapes of the API, as pydantic models.

The same models validate requests, shape responses, and give the OpenAPI
document its schemas (`model_json_schema`), so the document cannot drift from
what the server accepts and answers. Requests are strict (no "5" for 5, no
unknown fields), so a typo is an error that names the field, not a silent no-op.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Annotated, Any, Literal, get_args
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from app.engine.caps import parse_caps
from app.services.contacts import InvalidEmail, normalize_email

MAX_BATCH = 1000
SLUG = r"^[a-z0-9][a-z0-9_-]*$"
LOCALE = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"
# The message status words: the contract's six plus the engine's own three.
MessageStatus = Literal[
    "scheduled",
    "deferred",
    "sent",
    "failed",
    "suppressed",
    "cancelled",
    "sending",
    "skipped",
    "unknown",
]
STATUSES: tuple[str, ...] = get_args(MessageStatus)
# Plain words for a pattern mismatch, by pattern (errors.describe reads this).
PATTERN_WORDS = {
    SLUG: "can only use lowercase letters, digits, dashes and underscores, like ebook_downloaded",
    LOCALE: "should be a language tag, like en or pt-BR",
}


# -- validators --------------------------------------------------------------------


def _email(value: str) -> str:
    try:
        return normalize_email(value)
    except InvalidEmail as exc:
        raise PydanticCustomError(
            "invalid_email",
            "'{address}' is not a valid email address: {reason}",
            {"address": value, "reason": str(exc)},
        ) from None


def _time(value: Any) -> datetime:
    """An aware UTC datetime from ISO 8601 text; JSON has no other way to send one."""
    if not isinstance(value, str):
        raise PydanticCustomError("datetime_type", "should be an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value.strip())
        utc = parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):  # not ISO 8601, or out of range once in UTC
        raise PydanticCustomError(
            "time_format",
            "'{value}' is not an ISO 8601 time, like 2026-03-02T09:00:00+00:00",
            {"value": value},
        ) from None
    if utc is None:
        raise PydanticCustomError("timezone_aware", "needs an offset")
    return utc


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _timezone(value: str | None) -> str | None:
    if value is not None and value not in _zones():
        raise PydanticCustomError(
            "timezone", "'{value}' is not a time zone name, like Europe/London", {"value": value}
        )
    return value


def _frequency(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_caps(value)
    except (ValueError, OverflowError) as exc:
        raise PydanticCustomError("frequency", "{reason}", {"reason": str(exc)}) from None
    return value


def _whole(value: Any) -> Any:
    # JSON has one number type: 3.0 is the integer 3 to a JSON Schema validator too.
    return int(value) if isinstance(value, float) and value.is_integer() else value


Email = Annotated[
    str,
    AfterValidator(_email),
    Field(min_length=1, max_length=320, json_schema_extra={"format": "email"}),
]
Slug = Annotated[str, Field(min_length=1, max_length=64, pattern=SLUG)]
InTime = Annotated[datetime, BeforeValidator(_time), Field(examples=["2026-03-02T09:00:00+00:00"])]
OutTime = Annotated[
    datetime,
    PlainSerializer(lambda t: t.astimezone(UTC).isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Name = Annotated[str, Field(max_length=200)]


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class Out(BaseModel):
    # Every field of an answer is always present (null when unknown), so the schema
    # marks them all required and clients never have to test for a missing key.
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


# -- requests ----------------------------------------------------------------------


class AttributesIn(BaseModel):
    """Contact attributes: the known ones below plus any custom key. null deletes."""

    model_config = ConfigDict(
        strict=True, extra="allow", json_schema_extra={"additionalProperties": True}
    )

    first_name: Name | None = None
    last_name: Name | None = None
    timezone: Annotated[str | None, Field(max_length=64), AfterValidator(_timezone)] = Field(
        default=None, description="An IANA time zone name, like Europe/London."
    )
    locale: Annotated[str | None, Field(max_length=16, pattern=LOCALE)] = None

    @model_validator(mode="after")
    def _custom_keys(self) -> AttributesIn:
        for key in self.model_extra or {}:
            if not 1 <= len(key) <= 64 or key == "email":
                raise PydanticCustomError(
                    "attribute_name",
                    "'{key}' cannot be an attribute name (1 to 64 characters, not email)",
                    {"key": key},
                )
        return self

    def updates(self) -> dict[str, Any]:
        """Only the attributes the client sent (an absent key is left as it is)."""
        return {name: getattr(self, name) for name in self.model_fields_set} | dict(
            self.model_extra or {}
        )


class ContactIn(Strict):
    attributes: AttributesIn = Field(default_factory=AttributesIn)


def _topic_choice(value: Any) -> Any:
    # One plain error instead of pydantic's one per member of the union.
    if (
        value not in (True, False, "subscribed", "unsubscribed")
        or value in (0, 1)
        and not isinstance(value, bool)
    ):
        raise PydanticCustomError(
            "topic_choice", "should be true, false, subscribed or unsubscribed"
        )
    return value


TopicChoice = Annotated[
    bool | Literal["subscribed", "unsubscribed"], BeforeValidator(_topic_choice)
]


class ConsentIn(Strict):
    topics: dict[Slug, TopicChoice] = Field(
        default_factory=dict,
        description="true or subscribed opts in (double opt-in where configured).",
    )
    status: Literal["active", "unsubscribed"] | None = None
    frequency: Annotated[str | None, Field(max_length=32), AfterValidator(_frequency)] = Field(
        default=None, description='The recipient\'s own cap, like "1/7d"; null clears it.'
    )


class EventIn(Strict):
    email: Email
    type: Slug
    properties: dict[str, Any] = Field(default_factory=dict)
    occurred_at: InTime | None = Field(
        default=None, description="Default: when the server receives it."
    )
    id: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        default=None,
        description=(
            "Your idempotency key: sending the same id again for the same email stores nothing new."
        ),
    )


class BatchIn(Strict):
    """The documented shape of a batch. The handler checks the envelope with
    `BatchEnvelope` and then each item with EventIn, so that one bad item is
    reported by index instead of failing the whole batch."""

    events: Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)]


class BatchEnvelope(Strict):
    events: Annotated[list[Any], Field(min_length=1, max_length=MAX_BATCH)]


class PublishIn(Strict):
    version: Annotated[int, BeforeValidator(_whole), Field(ge=1, le=2**31 - 1)] | None = Field(
        default=None, description="Default: the newest version."
    )


class MessagesQuery(Strict):
    # Query strings are text: the handler converts `limit` and `after` before this.
    email: Email | None = None
    funnel: Slug | None = None
    status: MessageStatus | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    after: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(
        default=None, description="Cursor: the last id seen."
    )


# -- responses ---------------------------------------------------------------------


class ErrorBody(Out):
    code: str
    message: str
    field: str | None = None


class ErrorOut(Out):
    error: ErrorBody


class ProblemOut(Out):
    line: int | None
    field: str
    message: str
    stage: str | None


class DefinitionErrorOut(Out):
    error: ErrorBody
    problems: list[ProblemOut]


class ConsentOut(Out):
    status: Literal["active", "unsubscribed", "bounced", "complained"]
    topics: dict[str, Literal["subscribed", "unsubscribed", "pending"]]
    frequency: str | None


class EnrollmentOut(Out):
    funnel: str
    status: Literal["active", "exited"]
    stage: str
    stage_entered_at: OutTime
    enrolled_at: OutTime
    exited_at: OutTime | None
    exit_label: str | None


class ContactOut(Out):
    email: str
    attributes: dict[str, Any]
    consent: ConsentOut
    enrollments: list[EnrollmentOut]
    created_at: OutTime
    updated_at: OutTime


class EventOut(Out):
    status: Literal["accepted", "duplicate"]
    event_id: int


class BatchItemOut(Out):
    index: int
    status: Literal["accepted", "duplicate", "error"]
    event_id: int | None = None
    error: ErrorBody | None = None


class BatchOut(Out):
    accepted: int
    duplicates: int
    errors: int
    results: list[BatchItemOut]


class VersionOut(Out):
    number: int
    created_at: OutTime
    published_at: OutTime | None
    created_by: str | None


class FunnelSummary(Out):
    key: str
    name: str
    status: Literal["draft", "live", "paused"]
    live_version: int | None
    latest_version: int | None
    updated_at: OutTime


class FunnelList(Out):
    funnels: list[FunnelSummary]


class FunnelOut(FunnelSummary):
    versions: list[VersionOut]
    definition: dict[str, Any] | None = Field(
        description="The canonical JSON of the live (else newest) version."
    )
    source: str | None = Field(description="Its text as it was written (YAML or JSON).")


class SavedOut(Out):
    key: str
    version: int
    created: bool = Field(description="False when the newest version already had this definition.")
    status: Literal["draft", "live", "paused"]
    live_version: int | None


class ValidateOut(Out):
    ok: bool
    problems: list[ProblemOut]


class PublishOut(Out):
    key: str
    version: int
    moved: int = Field(description="Contacts moved out of stages this version removes.")


class StageCount(Out):
    key: str
    contacts: int


class StatsQuery(Strict):
    # `from` is a Python keyword, hence the alias; not strict: a query string is text.
    model_config = ConfigDict(strict=False, extra="forbid", populate_by_name=True)
    from_: AwareDatetime | None = Field(
        default=None,
        alias="from",
        description="Start (ISO 8601 with offset); default: 30 days before `to`.",
    )
    to: AwareDatetime | None = Field(
        default=None, description="End (ISO 8601 with offset); default: now."
    )
    interval: Literal["day", "week"] = "day"


class StatsOut(Out):
    key: str
    stages: list[StageCount] = Field(
        description="Active contacts per stage, in the definition's order."
    )
    entered: int = Field(description="Enrollments ever made.")
    active: int
    exited: int
    converted: int = Field(description='Exits labelled "converted".')
    exits: dict[str, int] = Field(description="Exits by label.")
    sends: dict[str, int] = Field(description="Messages by status.")
    over_time: dict[str, Any] | None = Field(
        default=None,
        description=(
            "Between `from` and `to`, per `interval`: `buckets`, `series` (entered, converted, "
            "exited, "
            "sent, deferred, suppressed, failed, opens, clicks, unsubscribes), `stages` (current, "
            "entered, moved_to per next stage), `exits`, `time_to_convert_hours`, `totals`."
        ),
    )


class MessageOut(Out):
    id: int
    email: str
    funnel: str
    stage: str
    template: str
    status: MessageStatus
    due_at: OutTime
    sent_at: OutTime | None
    attempts: int
    reason: str | None


class MessageList(Out):
    messages: list[MessageOut]
    next_after: int | None = Field(
        description="Pass as `after` for the next page; null on the last page."
    )
