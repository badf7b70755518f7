"""Recording clicks and opens of tracked emails, with bots told apart from people.

Every hit becomes a `TrackingHit` row. A human hit also becomes an event through
`ingest_event` (`email_clicked` with `url`, `template`, `funnel`, `stage`,
`message_id`; `email_opened` with the same but `url`, plus `estimate: true`), so
it moves and exits contacts like any event. A bot hit is only counted: mail
security scanners follow every link of a message as it is delivered, and must
not move anyone.

A hit is taken for a bot when:
- it comes within `DELIVERY_WINDOW` of the send (scanners fetch on arrival; no
  person opens and clicks that fast);
- its user agent names a known scanner or HTTP library, or is missing;
- it is a HEAD request (link checkers; browsers GET);
- it is a click after `BURST` other clicks on the same message within
  `BURST_WINDOW` (scanners follow every link at once). The first clicks of such a
  burst cannot be known for what they are when they arrive: a limit of the method.

Opens are estimates at best: Apple Mail Privacy Protection fetches every image on
delivery through its own proxy (indistinguishable from a person), and image
blocking hides real opens. Only the first human open of a message becomes an
event; later ones are only counted as hits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Contact, Message, TrackingHit
from app.services.funnels import version_definition
from app.services.ingest import ingest_event

DELIVERY_WINDOW = timedelta(seconds=10)
BURST, BURST_WINDOW = 2, timedelta(seconds=5)
# Substrings of user agents (lower case) of mail security scanners, link checkers and
# HTTP libraries. Not listed on purpose: GoogleImageProxy (Gmail fetching images for a
# reader, so a real open) and Apple's privacy proxy (it presents as a browser).
# fmt: off
SCANNER_AGENTS = (
    "barracuda", "mimecast", "proofpoint", "urlscan", "bingpreview", "safelinks", "symantec",
    "trendmicro", "fortiguard", "sophos", "cisco", "ironport", "forcepoint", "python-requests",
    "python-urllib", "aiohttp", "httpx", "curl/", "wget/", "go-http-client", "java/", "okhttp",
    "libwww-perl", "headlesschrome", "phantomjs", "googlebot", "bingbot", "slackbot",
    "twitterbot", "linkedinbot", "discordbot", "telegrambot", "facebookexternalhit", "applebot",
    "spider", "crawler",
)
# fmt: on
CLICK, OPEN = "click", "open"


@dataclass(frozen=True)
class Hit:
    """One request to a tracking URL, as the web layer saw it."""

    kind: str  # click | open
    contact_id: int
    message_id: int | None
    url: str | None = None
    user_agent: str | None = None
    ip: str | None = None
    method: str = "GET"


def bot_reason(hit: Hit, sent_at: datetime | None, recent_clicks: int, now: datetime) -> str | None:
    """Why this hit looks like a machine, or None for a person."""
    agent = (hit.user_agent or "").lower()
    if not agent.strip():
        return "no user agent"
    if hit.method == "HEAD":
        return "HEAD request"
    for name in SCANNER_AGENTS:
        if name in agent:
            return f"scanner user agent ({name.strip('/')})"
    # A negative delta is clock skew between worker and web: still "at delivery".
    if sent_at is not None and now - sent_at < DELIVERY_WINDOW:
        return f"within {DELIVERY_WINDOW.seconds}s of delivery"
    if hit.kind == CLICK and recent_clicks >= BURST:
        return f"{recent_clicks + 1} clicks within {BURST_WINDOW.seconds}s"
    return None


def record(session: Session, hit: Hit, now: datetime) -> TrackingHit | None:
    """Record one hit; the row, or None if the message is gone (nothing to record).

    The caller commits. The token was verified by the caller, so `hit` names a
    message we sent to that contact.
    """
    message = session.get(Message, hit.message_id) if hit.message_id else None
    if message is None or message.contact_id != hit.contact_id:
        return None
    reason = bot_reason(hit, message.sent_at, _recent_clicks(session, message.id, now), now)
    row = TrackingHit(
        message_id=message.id,
        contact_id=message.contact_id,
        funnel_id=message.funnel_id,
        version_id=message.version_id,
        kind=hit.kind,
        url=hit.url,
        at=now,
        bot=reason is not None,
        reason=reason,
        user_agent=(hit.user_agent or "")[:512] or None,
        ip=hit.ip,
    )
    if reason is None and (hit.kind == CLICK or not _opened_before(session, message.id)):
        row.event_id = _ingest(session, hit, message, now)
    session.add(row)
    session.flush()
    return row


def _recent_clicks(session: Session, message_id: int, now: datetime) -> int:
    query = (
        select(func.count())
        .select_from(TrackingHit)
        .where(
            TrackingHit.message_id == message_id,
            TrackingHit.kind == CLICK,
            TrackingHit.at > now - BURST_WINDOW,
            TrackingHit.at <= now,
        )
    )
    return session.scalar(query) or 0


def _opened_before(session: Session, message_id: int) -> bool:
    query = select(TrackingHit.id).where(
        TrackingHit.message_id == message_id, TrackingHit.kind == OPEN, TrackingHit.bot.is_(False)
    )
    return session.scalar(query.limit(1)) is not None


def _ingest(session: Session, hit: Hit, message: Message, now: datetime) -> int | None:
    """Store the hit as an event (applied to every funnel); the event's id."""
    contact = session.get(Contact, message.contact_id)
    if contact is None:
        return None
    funnel = version_definition(session, message.version_id)
    properties: dict[str, object] = {
        "template": message.template,
        "funnel": funnel.key,
        "stage": message.stage_key,
        "message_id": message.id,
    }
    if hit.kind == CLICK:
        properties["url"] = hit.url
        kind = "email_clicked"
    else:
        properties["estimate"] = True
        kind = "email_opened"
    ingested = ingest_event(
        session,
        email=contact.email,
        type=kind,
        properties=properties,
        occurred_at=now,
        now=now,
        client_id=None,
        source="tracking",
    )
    return ingested.event.id
