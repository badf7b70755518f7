"""The one place outside tests that reads the real clock: the adapters (CLI, web,
worker loop) call it and pass `now` down; the engine never does."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def parse_iso(text: str) -> datetime:
    """An ISO 8601 time with offset (a trailing Z is accepted); naive means UTC."""
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)
