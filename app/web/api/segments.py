"""Segments: the list, one segment (its size, recent joins and leaves), its members.

Read-only: segments are defined in files and loaded with `flask segments load`.
Its operations are added to the OpenAPI document here, beside the routes, so the
document keeps describing every route the API serves.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from flask import request
from pydantic import Field
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from app import database
from app.models import Segment
from app.services import segments as segments_svc
from app.services.segments import definition_of_version
from app.web.api import bp, openapi
from app.web.api.errors import ApiError
from app.web.api.schemas import SLUG, Out, OutTime, Strict
from app.web.api.wire import parse, respond

_DIGITS = re.compile(r"[0-9]{1,19}\Z")
_SLUG = re.compile(SLUG.removesuffix("$") + r"\Z")
RECENT = 20  # joins and leaves shown with a segment


class SegmentSummary(Out):
    key: str
    name: str
    description: str
    status: str = Field(description="draft (never published) or live")
    live_version: int | None
    size: int = Field(description="Members now.")
    updated_at: OutTime


class SegmentList(Out):
    segments: list[SegmentSummary]


class SegmentChangeOut(Out):
    email: str
    at: OutTime


class SegmentOut(SegmentSummary):
    definition: dict[str, Any] | None = Field(description="The live definition, as JSON.")
    source: str | None = Field(description="Its text as it was written.")
    joined: list[SegmentChangeOut] = Field(description=f"The latest {RECENT} joins, newest first.")
    left: list[SegmentChangeOut] = Field(description=f"The latest {RECENT} leaves, newest first.")


class SegmentMemberOut(Out):
    email: str
    since: OutTime


class SegmentMemberList(Out):
    members: list[SegmentMemberOut]
    next_after: int | None = Field(
        description="Pass as `after` for the next page; null on the last page."
    )


class SegmentMembersQuery(Strict):
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    after: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(
        default=None, description="Cursor: `next_after` of the previous page."
    )


def _find(session: Session, key: str) -> Segment:
    found = segments_svc.find(session, key) if len(key) <= 64 and _SLUG.match(key) else None
    if found is None:
        raise ApiError(404, "not_found", f"there is no segment '{key}'", "key")
    return found


def _summary(session: Session, segment: Segment, size: int) -> SegmentSummary:
    version = segment.live_version
    definition = definition_of_version(session, version) if version else None
    return SegmentSummary(
        key=segment.key,
        name=segment.name,
        description=definition.description if definition else "",
        status=segment.status,
        live_version=version.number if version else None,
        size=size,
        updated_at=segment.updated_at,
    )


@bp.get("/segments")
def list_segments() -> Response:
    session = database.session()
    sizes = segments_svc.sizes(session)
    found = segments_svc.all_segments(session)
    return respond(SegmentList(segments=[_summary(session, s, sizes.get(s.id, 0)) for s in found]))


@bp.get("/segments/<key>")
def get_segment(key: str) -> Response:
    session = database.session()
    segment = _find(session, key)
    summary = _summary(session, segment, segments_svc.size(session, segment))
    version = segment.live_version

    def changes(kind: str) -> list[SegmentChangeOut]:
        rows = segments_svc.recent_changes(session, segment, kind, RECENT)
        return [SegmentChangeOut(email=email, at=at) for email, at in rows]

    return respond(
        SegmentOut(
            **summary.model_dump(),
            definition=version.definition if version else None,
            source=version.source if version else None,
            joined=changes("joined"),
            left=changes("left"),
        )
    )


@bp.get("/segments/<key>/members")
def list_members(key: str) -> Response:
    """Members in a stable order (by contact); `next_after` pages on."""
    query = _query_args()
    session = database.session()
    segment = _find(session, key)
    rows = segments_svc.members(session, segment, after=query.after, limit=query.limit + 1)
    page = rows[: query.limit]
    return respond(
        SegmentMemberList(
            members=[SegmentMemberOut(email=email, since=since) for _, email, since in page],
            next_after=page[-1][0] if len(rows) > query.limit else None,
        )
    )


def _query_args() -> SegmentMembersQuery:
    """`limit` and `after` arrive as text: plain digits become numbers here, before
    the strict model sees them; any other parameter is a 422 that names it."""
    args: dict[str, Any] = {}
    for name, value in request.args.items():
        if name not in SegmentMembersQuery.model_fields:
            raise ApiError(422, "invalid", f"{name} is not a parameter: use limit or after", name)
        if not _DIGITS.match(value):
            raise ApiError(422, "invalid", f"{name} should be a whole number", name)
        args[name] = int(value)
    return parse(SegmentMembersQuery, args)


# --- The OpenAPI document -----------------------------------------------------------


_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": SLUG, "maxLength": 64},
    "description": "The segment's key.",
}
_PAGE = tuple(
    {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {k: v for k, v in prop.items() if k not in ("title", "description", "default")},
        **({"description": prop["description"]} if "description" in prop else {}),
    }
    for name, prop in SegmentMembersQuery.model_json_schema()["properties"].items()
)
openapi.OPERATIONS += (
    openapi.Op("get", "/segments", "listSegments", "Every segment with its size",
               {200: SegmentList}, tags=("segments",)),
    openapi.Op("get", "/segments/{key}", "getSegment",
               "A segment: its definition, size, and latest joins and leaves",
               {200: SegmentOut, 404: openapi.s.ErrorOut}, params=(_KEY,), tags=("segments",)),
    openapi.Op("get", "/segments/{key}/members", "listSegmentMembers",
               "A segment's members, paged", {200: SegmentMemberList, 404: openapi.s.ErrorOut,
               422: openapi.s.ErrorOut}, params=(_KEY, *_PAGE), tags=("segments",)),
)  # fmt: skip
