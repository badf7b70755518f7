"""Transports: how a composed email leaves. SMTP for real, memory for the simulator.

A transport raises `TransportError(permanent=..., code=...)`; it never decides
about retries (that is `app.engine.retry`).
"""

from __future__ import annotations

import contextlib
import smtplib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from app.delivery.compose import Email
from app.engine.errors import TransportError

Outcome = TransportError | None  # None: the server accepted the message


def send_each(send: Callable[[Email], None], emails: Sequence[Email]) -> list[Outcome]:
    """`send` each email in turn; the outcome of each."""
    outcomes: list[Outcome] = []
    for email in emails:
        try:
            send(email)
            outcomes.append(None)
        except TransportError as exc:
            outcomes.append(exc)
    return outcomes


class Transport(Protocol):
    def send(self, email: Email) -> None:
        """Deliver one message or raise TransportError."""

    def send_all(self, emails: Sequence[Email]) -> list[Outcome]:
        """Deliver each message; the outcome of each, in order."""

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
    # Sessions open at once. SMTP answers each command before the next is sent, so one
    # session spends most of its time waiting on the server; a few in parallel keep it
    # busy (listmonk and Postal do the same).
    connections: int = 4


class _Session:
    """One SMTP session, opened on first use and reused for every message after."""

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

    def send(self, email: Email) -> None:
        conn = self._conn or self._connect()
        # SMTPUTF8 for an international address, as smtplib's send_message would ask.
        options = ["SMTPUTF8", "BODY=8BITMIME"] if email.international else []
        try:
            conn.sendmail(email.mail_from, [email.to], email.raw, mail_options=options)
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


class SmtpTransport:
    """SMTP over up to `settings.connections` sessions, each reused for the whole tick."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._sessions = [_Session(settings) for _ in range(max(1, settings.connections))]
        self._pool: ThreadPoolExecutor | None = None

    def send(self, email: Email) -> None:
        self._sessions[0].send(email)

    def send_all(self, emails: Sequence[Email]) -> list[Outcome]:
        """Messages are dealt round-robin to the sessions, which send in parallel
        threads (the GIL is released while a thread waits on its socket)."""
        lanes = min(len(self._sessions), len(emails))
        if lanes <= 1:
            return send_each(self._sessions[0].send, emails)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(len(self._sessions), "smtp")
        futures = [
            self._pool.submit(send_each, self._sessions[k].send, emails[k::lanes])
            for k in range(lanes)
        ]
        per_lane = [f.result() for f in futures]
        return [per_lane[i % lanes][i // lanes] for i in range(len(emails))]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        for session in self._sessions:
            session.close()


def _decode(text: bytes | str) -> str:
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_decode(exc.smtp_error)}"


@dataclass
class MemoryTransport:
    """Keeps what it is given; used by the simulator and by tests of the engine alone."""

    sent: list[Email] = field(default_factory=list)

    def send(self, email: Email) -> None:
        self.sent.append(email)

    def send_all(self, emails: Sequence[Email]) -> list[Outcome]:
        return send_each(self.send, emails)

    def close(self) -> None:
        pass
