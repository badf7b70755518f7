"""Funnels: list, read, save a version (YAML or JSON), validate, publish, stats.

A PUT stores a new version as a draft; nothing changes for contacts until it is
published. Problems come back with the line, field and stage they are about.
"""

from __future__ import annotations

import re
from datetime import timedelta

from flask import current_app, g, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app import clock, database
from app.delivery.render import available
from app.engine.definition import Problem, validate_text
from app.engine.model import FunnelDef
from app.models import Funnel, FunnelVersion
from app.services import analytics
from app.services import funnels as funnels_svc
from app.web.api import bp
from app.web.api.errors import ApiError
from app.web.api.schemas import (
    PATTERN_WORDS,
    SLUG,
    FunnelList,
    FunnelOut,
    FunnelSummary,
    ProblemOut,
    PublishIn,
    PublishOut,
    SavedOut,
    StatsQuery,
    ValidateOut,
    VersionOut,
)
from app.web.api.stats import funnel_stats
from app.web.api.wire import clean, json_body, parse, respond, text_body, unstorable

_SLUG = re.compile(SLUG.removesuffix("$") + r"\Z")
_KEY_LINE = re.compile(r"""^["']?key["']?\s*:""", re.M)
# Column widths the definition's names are stored in (app.models).
_WIDTHS = {"key": 64, "name": 200, "topic": 64}


def _is_key(key: str) -> bool:
    return len(key) <= 64 and _SLUG.match(key) is not None


def find_funnel(session: Session, key: str) -> Funnel:
    """The funnel with `key`, or 404 (a key that is not a slug cannot exist)."""
    funnel = session.scalar(select(Funnel).where(Funnel.key == key)) if _is_key(key) else None
    if funnel is None:
        raise ApiError(404, "not_found", f"there is no funnel '{key}'", "key")
    return funnel


def _check_url_key(key: str) -> None:
    """A definition can only be saved under a key a funnel can have: else 422, in
    the shape of a definition's problems."""
    if _is_key(key):
        return
    message = f"'{key}' cannot be a funnel key: {PATTERN_WORDS[SLUG]}, at most 64 characters"
    problem = {"line": None, "field": "key", "message": message, "stage": None}
    raise ApiError(422, "invalid", f"key: {message}", "key", extra={"problems": [problem]})


def _summary(funnel: Funnel, live: int | None, latest: int | None) -> FunnelSummary:
    return FunnelSummary(
        key=funnel.key,
        name=funnel.name,
        status=funnel.status,
        live_version=live,  # type: ignore[arg-type]
        latest_version=latest,
        updated_at=funnel.updated_at,
    )


@bp.get("/funnels")
def list_funnels() -> Response:
    session = database.session()
    latest = (
        select(FunnelVersion.funnel_id, func.max(FunnelVersion.number).label("n"))
        .group_by(FunnelVersion.funnel_id)
        .subquery()
    )
    live = (
        select(FunnelVersion.number)
        .where(FunnelVersion.id == Funnel.live_version_id)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Funnel, live, latest.c.n)
        .outerjoin(latest, latest.c.funnel_id == Funnel.id)
        .order_by(Funnel.key)
    ).all()
    return respond(
        FunnelList(funnels=[_summary(f, live_n, latest_n) for f, live_n, latest_n in rows])
    )


@bp.get("/funnels/<key>")
def get_funnel(key: str) -> Response:
    session = database.session()
    funnel = find_funnel(session, key)
    versions = funnels_svc.versions(session, funnel)
    live = next((v for v in versions if v.id == funnel.live_version_id), None)
    shown = live or (versions[0] if versions else None)
    summary = _summary(
        funnel, live.number if live else None, versions[0].number if versions else None
    )
    return respond(
        FunnelOut(
            **summary.model_dump(),
            versions=[
                VersionOut(
                    number=v.number,
                    created_at=v.created_at,
                    published_at=v.published_at,
                    created_by=v.created_by,
                )
                for v in versions
            ],
            definition=shown.definition if shown else None,
            source=shown.source if shown else None,
        )
    )


@bp.put("/funnels/<key>")
def put_funnel(key: str) -> Response:
    _check_url_key(key)
    source = text_body()
    templates = available(current_app.config["TEMPLATES_DIR"])
    problems = check_definition(source, key, templates)
    if problems:
        shown = [_problem_out(p) for p in problems]
        raise ApiError(
            422,
            "invalid_definition",
            _sentence(shown[0], len(shown)),
            shown[0].field,
            extra={"problems": [p.model_dump() for p in shown]},
        )
    now, session = clock.utcnow(), database.session()
    funnel, version, created = funnels_svc.save_version(
        session, source, now, templates=templates, created_by=f"api:{g.api_key_name}"
    )
    session.commit()
    saved = SavedOut(
        key=funnel.key,
        version=version.number,
        created=created,
        status=funnel.status,  # type: ignore[arg-type]
        live_version=funnel.live_version.number if funnel.live_version else None,
    )
    return respond(saved, 201 if created else 200)


@bp.post("/funnels/<key>/validate")
def validate_funnel(key: str) -> Response:
    _check_url_key(key)
    problems = check_definition(text_body(), key, available(current_app.config["TEMPLATES_DIR"]))
    return respond(ValidateOut(ok=not problems, problems=[_problem_out(p) for p in problems]))


@bp.post("/funnels/<key>/publish")
def publish_funnel(key: str) -> Response:
    """Publish the version named in the body, or the newest one."""
    wanted = parse(PublishIn, json_body(default={}))
    session = database.session()
    funnel = find_funnel(session, key)
    version = _version(session, funnel, wanted.version)
    try:
        moved = funnels_svc.publish(session, funnel, version, clock.utcnow())
    except funnels_svc.PublishRefused as exc:
        session.rollback()
        raise ApiError(409, "publish_refused", str(exc), "version") from None
    session.commit()
    return respond(PublishOut(key=funnel.key, version=version.number, moved=moved))


@bp.get("/funnels/<key>/stats")
def stats(key: str) -> Response:
    """Where contacts are now and what went out, plus the same over time (analytics)."""
    session = database.session()
    funnel = find_funnel(session, key)
    query = parse(StatsQuery, dict(request.args))
    end = query.to or clock.utcnow()
    start = query.from_ or end - timedelta(days=30)
    if start >= end:
        raise ApiError(422, "invalid", "`from` must be before `to`", "from")
    if (end - start) / (
        timedelta(days=7) if query.interval == "week" else timedelta(days=1)
    ) > 1000:
        raise ApiError(
            422, "invalid", "at most 1,000 intervals: narrow the range or use interval=week", "from"
        )
    out = funnel_stats(session, funnel)
    over_time = analytics.funnel_stats(
        session, funnel.key, start=start, end=end, interval=query.interval
    )
    return respond(out.model_copy(update={"over_time": over_time.as_dict()}))


def _version(session: Session, funnel: Funnel, number: int | None) -> FunnelVersion:
    query = select(FunnelVersion).where(FunnelVersion.funnel_id == funnel.id)
    query = (
        query.where(FunnelVersion.number == number)
        if number
        else query.order_by(FunnelVersion.number.desc())
    )
    version = session.scalar(query.limit(1))
    if version is None:
        raise ApiError(
            404, "not_found", f"funnel '{funnel.key}' has no version {number}", "version"
        )
    return version


def check_definition(source: str, key: str, templates: set[str]) -> list[Problem]:
    """Every problem of `source` as the definition of funnel `key`: the engine's
    checks, then what the API adds (the key must be the URL's; names must fit)."""
    result = validate_text(source, templates=templates)
    if result.funnel is None:
        return list(result.problems)
    funnel = result.funnel
    problems = _storage_problems(funnel)
    if funnel.key != key:
        match = _KEY_LINE.search(source)
        line = source.count("\n", 0, match.start()) + 1 if match else None
        problems.insert(
            0,
            Problem(
                line,
                "key",
                f"the definition's key '{funnel.key}' is not '{key}', the funnel in the URL",
            ),
        )
    return problems


def _storage_problems(funnel: FunnelDef) -> list[Problem]:
    """What the engine accepts but the database could not store."""
    problems = [
        Problem(None, name, f"is longer than {width} characters")
        for name, width in _WIDTHS.items()
        if len(getattr(funnel, name)) > width
    ]
    problems += [
        Problem(
            None, "stages", f"stage key '{s.key[:70]}…' is longer than 64 characters", s.key[:64]
        )
        for s in funnel.stages
        if len(s.key) > 64
    ]
    problems += [
        Problem(None, "exit", f"exit label '{e.as_[:70]}…' is longer than 64 characters")
        for e in funnel.exits
        if len(e.as_) > 64
    ]
    bad = unstorable(funnel.to_dict())
    if bad is not None:
        problems.append(
            Problem(None, bad.field or "(file)", bad.message.removeprefix(f"{bad.field}: "))
        )
    return problems


def _problem_out(problem: Problem) -> ProblemOut:
    # Problems quote the definition, which may hold text that cannot be encoded.
    return ProblemOut(
        line=problem.line,
        field=clean(problem.field),
        message=clean(problem.message),
        stage=clean(problem.stage) if problem.stage is not None else None,
    )


def _sentence(problem: ProblemOut, count: int) -> str:
    where = f"line {problem.line}: " if problem.line else ""
    more = (
        f" (and {count - 1} more problem{'s' if count > 2 else ''}, see `problems`)"
        if count > 1
        else ""
    )
    return f"{where}{problem.field}: {problem.message}{more}"
