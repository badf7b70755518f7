"""Funnel analytics over time: one module for the API and the console.

`funnel_stats(session, key, start=, end=, interval=)` answers, per funnel (and
optionally one version), per UTC day or ISO week, with every count aggregated in
SQL (a handful of grouped queries, each on an index that starts with the funnel):

- entered: enrollments (stage moves of reason `entry`), by when they entered;
- converted / exited: exits labelled `converted` / every exit whatever its label
  (`exits` breaks them down by label);
- sent: messages sent, by `sent_at`;
- suppressed / failed: messages that ended so (failures include template errors),
  by their last due time: the worker decides about a message as it falls due (a
  retry moves the due time to the retry), so that is when it was suppressed or failed;
- deferred: messages held back by a cap, the send window or a temporary SMTP
  failure, counted on the day they were scheduled for. There is no deferral log:
  a deferral moves `due_at` later, so a message whose `due_at` is past its
  scheduled time (stage entry `created_at` plus the step's `after`, from the
  definition of the message's version) was deferred at least once, however it
  ended (sent later, still waiting, cancelled);
- opens / clicks: unique contacts per bucket with a human hit (app.services.tracking);
  a click counts as an open too, since it proves the email was opened with its
  images off. Opens are estimates (image blocking, Apple's privacy prefetch); bot
  and scanner hits are in `bot_hits`, never in the series;
- unsubscribes: unique contacts per bucket who opted out (globally or of a topic)
  through a link in one of this funnel's emails (the ledger row's `message_id`).

`stages` (in the definition's order) gives who is in each stage now, entries into
it and where contacts went from it within the range; `time_to_convert_hours` the
median and 90th percentile from enrollment to a `converted` exit within the range.
Buckets are counted in SQL from whole epoch seconds, which both SQLite and
PostgreSQL compute (`strftime('%s')`, `date_part('epoch')`), so one query serves both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    and_,
    case,
    cast,
    distinct,
    func,
    literal,
    select,
)
from sqlalchemy.orm import Session

from app.engine.model import FunnelDef
from app.models import (
    ConsentChange,
    Enrollment,
    Funnel,
    FunnelVersion,
    Message,
    StageMove,
    TrackingHit,
)
from app.services.funnels import version_definition

INTERVALS = {"day": timedelta(days=1), "week": timedelta(weeks=1)}
MAX_BUCKETS = 1000
SERIES = (
    "entered",
    "converted",
    "exited",
    "sent",
    "deferred",
    "suppressed",
    "failed",
    "opens",
    "clicks",
    "unsubscribes",
)
CONVERTED = "converted"
# An exit without a label (there should be none) is shown as the default label.
NO_LABEL = "exited"


@dataclass
class StageStats:
    key: str
    current: int  # contacts in the stage now (active enrollments)
    entered: int  # entries into the stage within [start, end)
    moved_to: dict[str, int]  # next stage key, or "exit:<label>" -> moves within [start, end)


@dataclass
class FunnelStats:
    funnel_key: str
    start: datetime
    end: datetime
    interval: str
    buckets: list[datetime]
    series: dict[str, list[int]]
    stages: list[StageStats]
    exits: dict[str, int]
    time_to_convert_hours: dict[str, float | None]
    totals: dict[str, int]
    # Hits by scanners and link checkers ("opens", "clicks"), counted apart from people.
    bot_hits: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-able, times in ISO 8601; opens are flagged as estimates."""
        data = asdict(self)
        data["start"], data["end"] = self.start.isoformat(), self.end.isoformat()
        data["buckets"] = [b.isoformat() for b in self.buckets]
        data["estimates"] = ["opens"]
        return data


@dataclass(frozen=True)
class _Scope:
    """What every query shares: funnel, version, range and bucket arithmetic."""

    funnel_id: int
    version_id: int | None
    start: datetime
    end: datetime
    origin: datetime  # the first bucket's start
    step: timedelta
    count: int  # number of buckets
    sqlite: bool

    def epoch(self, column: Any) -> ColumnElement[int]:
        """Whole seconds since 1970 of a UTC datetime column, in SQL."""
        if self.sqlite:
            return cast(func.strftime("%s", column), Integer)
        # date_part gives a double, about twice as fast as extract()'s numeric.
        return cast(func.floor(func.date_part("epoch", column)), BigInteger)

    def bucket(self, seconds: ColumnElement[int]) -> ColumnElement[int]:
        """The index of the bucket holding `seconds` (integer division in both databases).

        The constants are rendered inline so that the same expression in SELECT and
        GROUP BY reads as one to PostgreSQL.
        """
        origin = literal(int(self.origin.timestamp()), Integer, literal_execute=True)
        step = literal(int(self.step.total_seconds()), Integer, literal_execute=True)
        return ((seconds - origin) // step).label("bucket")

    def in_range(self, column: Any) -> ColumnElement[bool]:
        return and_(column >= self.start, column < self.end)

    def seconds_in_range(self, seconds: ColumnElement[int]) -> ColumnElement[bool]:
        return and_(
            seconds >= int(self.start.timestamp()), seconds < math.ceil(self.end.timestamp())
        )

    def version(self, column: Any) -> list[ColumnElement[bool]]:
        return [] if self.version_id is None else [column == self.version_id]

    @property
    def buckets(self) -> list[datetime]:
        return [self.origin + i * self.step for i in range(self.count)]


def funnel_stats(
    session: Session,
    funnel_key: str,
    *,
    start: datetime,
    end: datetime,
    interval: str = "day",
    version_id: int | None = None,
) -> FunnelStats:
    """The funnel's stats over [start, end) by `interval` ("day" or "week", UTC).

    LookupError for an unknown funnel key (or a version of another funnel);
    ValueError for an unknown interval, an empty range or too many buckets.
    """
    funnel = session.scalar(select(Funnel).where(Funnel.key == funnel_key))
    if funnel is None:
        raise LookupError(f"there is no funnel '{funnel_key}'")
    scope = _scope(session, funnel.id, start, end, interval, version_id)
    series = {key: [0] * scope.count for key in SERIES}
    exits = _moves(session, scope, series)
    _sent(session, scope, series)
    _outcomes(session, scope, series)
    _deferred(session, scope, series)
    bot_hits = _hits(session, scope, series)
    _unsubscribes(session, scope, series)
    definition = _definition(session, funnel, version_id)
    return FunnelStats(
        funnel_key=funnel.key,
        start=scope.start,
        end=scope.end,
        interval=interval,
        buckets=scope.buckets,
        series=series,
        stages=_stages(session, scope, definition),
        exits=exits,
        time_to_convert_hours=_time_to_convert(session, scope),
        totals={key: sum(values) for key, values in series.items()},
        bot_hits=bot_hits,
    )


def _utc(value: datetime) -> datetime:
    # A naive time is taken as UTC, like everywhere else in the app.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _scope(
    session: Session,
    funnel_id: int,
    start: datetime,
    end: datetime,
    interval: str,
    version_id: int | None,
) -> _Scope:
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {', '.join(INTERVALS)}, not '{interval}'")
    start, end = _utc(start), _utc(end)
    if end <= start:
        raise ValueError("the end of the range must be after its start")
    step = INTERVALS[interval]
    origin = start.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "week":  # ISO weeks start on Monday
        origin -= timedelta(days=origin.weekday())
    count = math.ceil((end - origin) / step)
    if count > MAX_BUCKETS:
        raise ValueError(f"the range spans {count} {interval}s; at most {MAX_BUCKETS} are shown")
    if version_id is not None:
        owner = session.scalar(
            select(FunnelVersion.funnel_id).where(FunnelVersion.id == version_id)
        )
        if owner != funnel_id:
            raise LookupError(f"the funnel has no version with id {version_id}")
    sqlite = session.get_bind().dialect.name == "sqlite"
    return _Scope(funnel_id, version_id, start, end, origin, step, count, sqlite)


def _add(series: list[int], rows: Sequence[Any]) -> None:
    """Add (bucket, count) rows into a series; rows outside it are ignored."""
    for bucket, n in rows:
        if bucket is not None and 0 <= bucket < len(series):
            series[bucket] += n


def _moves(session: Session, scope: _Scope, series: dict[str, list[int]]) -> dict[str, int]:
    """entered, converted and exited per bucket; the exits by label."""
    bucket = scope.bucket(scope.epoch(StageMove.at))
    rows = session.execute(
        select(bucket, StageMove.reason, StageMove.label, func.count())
        .where(
            StageMove.funnel_id == scope.funnel_id,
            scope.in_range(StageMove.at),
            StageMove.reason.in_(("entry", "exit")),
            *scope.version(StageMove.version_id),
        )
        .group_by(bucket, StageMove.reason, StageMove.label)
    ).all()
    exits: dict[str, int] = {}
    for b, reason, label, n in rows:
        if reason == "entry":
            _add(series["entered"], [(b, n)])
            continue
        _add(series["exited"], [(b, n)])
        if label == CONVERTED:
            _add(series["converted"], [(b, n)])
        exits[label or NO_LABEL] = exits.get(label or NO_LABEL, 0) + n
    return exits


def _sent(session: Session, scope: _Scope, series: dict[str, list[int]]) -> None:
    bucket = scope.bucket(scope.epoch(Message.sent_at))
    query = (
        select(bucket, func.count())
        .where(
            Message.funnel_id == scope.funnel_id,
            scope.in_range(Message.sent_at),
            Message.status == "sent",
            *scope.version(Message.version_id),
        )
        .group_by(bucket)
    )
    _add(series["sent"], session.execute(query).all())


def _outcomes(session: Session, scope: _Scope, series: dict[str, list[int]]) -> None:
    """suppressed and failed, by their (last) due time: when the worker decided."""
    bucket = scope.bucket(scope.epoch(Message.due_at))
    rows = session.execute(
        select(bucket, Message.status, func.count())
        .where(
            Message.funnel_id == scope.funnel_id,
            scope.in_range(Message.due_at),
            Message.status.in_(("suppressed", "failed")),
            *scope.version(Message.version_id),
        )
        .group_by(bucket, Message.status)
    ).all()
    for b, status, n in rows:
        _add(series[status], [(b, n)])


def _delays(session: Session, scope: _Scope) -> list[tuple[int, str, int, int]]:
    """(version id, stage key, step, seconds after stage entry) of every email step."""
    query = select(FunnelVersion.id).where(FunnelVersion.funnel_id == scope.funnel_id)
    if scope.version_id is not None:
        query = query.where(FunnelVersion.id == scope.version_id)
    return [
        (version_id, stage.key, step, int(email.after.total_seconds()))
        for version_id in session.scalars(query)
        for stage in version_definition(session, version_id).stages
        for step, email in enumerate(stage.emails)
    ]


def _deferred(session: Session, scope: _Scope, series: dict[str, list[int]]) -> None:
    """Messages whose due time was moved past the scheduled one, by scheduled day."""
    delays = _delays(session, scope)
    if not delays:
        return
    delay = case(
        *[
            (and_(Message.version_id == v, Message.stage_key == s, Message.step == i), seconds)
            for v, s, i, seconds in delays
        ],
        else_=None,
    )
    scheduled = scope.epoch(Message.created_at) + delay
    inner = (
        select(scheduled.label("t"))
        .where(
            Message.funnel_id == scope.funnel_id,
            Message.due_at >= scope.start,
            Message.created_at < scope.end,
            scope.epoch(Message.due_at) > scheduled,
            *scope.version(Message.version_id),
        )
        .subquery()
    )
    bucket = scope.bucket(inner.c.t)
    query = select(bucket, func.count()).where(scope.seconds_in_range(inner.c.t)).group_by(bucket)
    _add(series["deferred"], session.execute(query).all())


def _hits(session: Session, scope: _Scope, series: dict[str, list[int]]) -> dict[str, int]:
    """Unique human openers and clickers per bucket; the bot hits by kind."""
    where = [
        TrackingHit.funnel_id == scope.funnel_id,
        scope.in_range(TrackingHit.at),
        *scope.version(TrackingHit.version_id),
    ]
    bucket = scope.bucket(scope.epoch(TrackingHit.at))
    clicker = case((TrackingHit.kind == "click", TrackingHit.contact_id), else_=None)
    rows = session.execute(
        select(bucket, func.count(distinct(TrackingHit.contact_id)), func.count(distinct(clicker)))
        .where(*where, TrackingHit.bot.is_(False))
        .group_by(bucket)
    ).all()
    _add(series["opens"], [(b, opens) for b, opens, _ in rows])
    _add(series["clicks"], [(b, clicks) for b, _, clicks in rows])
    bots = session.execute(
        select(TrackingHit.kind, func.count())
        .where(*where, TrackingHit.bot.is_(True))
        .group_by(TrackingHit.kind)
    ).all()
    found = {kind: n for kind, n in bots}
    return {"opens": found.get("open", 0), "clicks": found.get("click", 0)}


def _unsubscribes(session: Session, scope: _Scope, series: dict[str, list[int]]) -> None:
    bucket = scope.bucket(scope.epoch(ConsentChange.at))
    query = (
        select(bucket, func.count(distinct(ConsentChange.contact_id)))
        .join(Message, Message.id == ConsentChange.message_id)
        # `message_id IS NOT NULL` repeated so PostgreSQL may use the partial index.
        .where(
            ConsentChange.message_id.is_not(None),
            scope.in_range(ConsentChange.at),
            ConsentChange.after == "unsubscribed",
            ConsentChange.field.in_(("status", "topic")),
            Message.funnel_id == scope.funnel_id,
            *scope.version(Message.version_id),
        )
        .group_by(bucket)
    )
    _add(series["unsubscribes"], session.execute(query).all())


def _definition(session: Session, funnel: Funnel, version_id: int | None) -> FunnelDef | None:
    """The definition whose stages are listed: the asked version, the live one, or the newest."""
    chosen = (
        version_id
        or funnel.live_version_id
        or session.scalar(
            select(FunnelVersion.id)
            .where(FunnelVersion.funnel_id == funnel.id)
            .order_by(FunnelVersion.number.desc())
            .limit(1)
        )
    )
    return version_definition(session, chosen) if chosen else None


def _stages(session: Session, scope: _Scope, definition: FunnelDef | None) -> list[StageStats]:
    if definition is None:
        return []
    stats = {s.key: StageStats(s.key, 0, 0, {}) for s in definition.stages}
    current = select(Enrollment.stage_key, func.count()).where(
        Enrollment.funnel_id == scope.funnel_id,
        Enrollment.status == "active",
        *scope.version(Enrollment.version_id),
    )
    for key, n in session.execute(current.group_by(Enrollment.stage_key)):
        if key in stats:
            stats[key].current = n
    moves = [
        StageMove.funnel_id == scope.funnel_id,
        scope.in_range(StageMove.at),
        *scope.version(StageMove.version_id),
    ]
    entered = select(StageMove.to_stage, func.count()).where(
        *moves, StageMove.to_stage.is_not(None)
    )
    for key, n in session.execute(entered.group_by(StageMove.to_stage)):
        if key in stats:
            stats[key].entered = n
    edges = select(StageMove.from_stage, StageMove.to_stage, StageMove.label, func.count()).where(
        *moves, StageMove.from_stage.is_not(None)
    )
    for source, target, label, n in session.execute(
        edges.group_by(StageMove.from_stage, StageMove.to_stage, StageMove.label)
    ):
        if source in stats:
            edge = target or f"exit:{label or NO_LABEL}"
            stats[source].moved_to[edge] = stats[source].moved_to.get(edge, 0) + n
    return list(stats.values())


def _time_to_convert(session: Session, scope: _Scope) -> dict[str, float | None]:
    """Median and 90th percentile (linear interpolation) of hours to a conversion."""
    seconds = (scope.epoch(StageMove.at) - scope.epoch(Enrollment.enrolled_at)).label("s")
    base = (
        select(seconds)
        .join(Enrollment, Enrollment.id == StageMove.enrollment_id)
        .where(
            StageMove.funnel_id == scope.funnel_id,
            scope.in_range(StageMove.at),
            StageMove.reason == "exit",
            StageMove.label == CONVERTED,
            *scope.version(StageMove.version_id),
        )
    )
    n = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    if n == 0:
        return {"median": None, "p90": None}
    wanted = {q: q * (n - 1) for q in (0.5, 0.9)}  # 0-based fractional ranks
    ranks = {r for pos in wanted.values() for r in (math.floor(pos), math.ceil(pos))}
    values = _ranked(session, base, ranks)
    result: dict[str, float | None] = {}
    for name, q in (("median", 0.5), ("p90", 0.9)):
        pos = wanted[q]
        low, high = values[math.floor(pos)], values[math.ceil(pos)]
        result[name] = round((low + (high - low) * (pos - math.floor(pos))) / 3600, 2)
    return result


def _ranked(session: Session, base: Select[Any], ranks: set[int]) -> dict[int, float]:
    """The values at these 0-based ranks of `base`'s column `s`, sorted, fetched in SQL."""
    sub = base.subquery()
    ordered = select(sub.c.s, func.row_number().over(order_by=sub.c.s).label("rn")).subquery()
    rows = session.execute(
        select(ordered.c.rn, ordered.c.s).where(ordered.c.rn.in_([r + 1 for r in ranks]))
    ).all()
    return {rn - 1: float(s) for rn, s in rows}
