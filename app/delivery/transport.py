"""Transports: how a composed email leaves. SMTP for real, memory for the simulator.

A transport raises `TransportError(permanent=..., code=...)`; it never decides
about retries (that is `app.engine.retry`).
"""

from __future__ import annotations

import contextlib
import smtplib
from dataclasses import dataclass, field
from email.message import Message
from typing import Protocol

from app.engine.errors import TransportError


class Transport(Protocol):
    def send(self, message: Message) -> None:
        """Deliver one message or raise TransportError."""

    def close(self) -> None:
        """Release any connection (called at the end of every tick)."""


@dataclass
class SmtpSettings:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout: float = 30.0


class SmtpTransport:
    """SMTP with one connection reused for every message of a tick."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            if s.starttls:
                conn.starttls()
            if s.username:
                conn.login(s.username, s.password or "")
        except smtplib.SMTPResponseException as exc:
            raise TransportError(_reply(exc), permanent=False, code=exc.smtp_code) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportError(
                f"cannot connect to {s.host}:{s.port}: {exc}", permanent=False
            ) from None
        self._conn = conn
        return conn

    def send(self, message: Message) -> None:
        conn = self._conn or self._connect()
        try:
            conn.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            self._reset()
            raise TransportError(
                f"{code} {_decode(text)}", permanent=code >= 500, code=code, recipient=True
            ) from None
        except smtplib.SMTPResponseException as exc:
            self._reset()
            raise TransportError(
                _reply(exc), permanent=exc.smtp_code >= 500, code=exc.smtp_code
            ) from None
        except (OSError, smtplib.SMTPException) as exc:  # lost connection, time-out, garbled reply
            self._drop()
            raise TransportError(
                f"connection lost: {exc or type(exc).__name__}", permanent=False
            ) from None

    def _reset(self) -> None:
        """After a refused message the session may continue, if RSET works."""
        if self._conn is None:
            return
        try:
            self._conn.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
        self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._conn.quit()
        self._drop()


def _decode(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_decode(exc.smtp_error)}"


@dataclass
class MemoryTransport:
    """Keeps what it is given; used by the simulator and by tests of the engine alone."""

    sent: list[Message] = field(default_factory=list)

    def send(self, message: Message) -> None:
        self.sent.append(message)

    def close(self) -> None:
        pass
