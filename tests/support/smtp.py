"""A real SMTP server on loopback for tests, with scriptable failures.

``SmtpSink`` runs aiosmtpd in a background thread and keeps every accepted message.
Tests can make it misbehave the way real servers do: refuse one recipient for good
(a hard bounce), answer a temporary 4xx to the next DATA, or drop the connection
without answering (the sender cannot know whether the message arrived).

    with SmtpSink() as sink:
        sink.reply_rcpt("gone@example.com", "550 5.1.1 No such user")
        sink.fail_next_data("451 4.3.0 Try again later")
        ...send through sink.host, sink.port...
        [received] = sink.wait_for(1)
        assert received.message["Subject"] == "Welcome"
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import cached_property
from typing import Literal, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

DropPoint = Literal["mail", "rcpt", "data"]


@dataclass(frozen=True)
class Received:
    """One accepted message: the SMTP envelope plus the message, parsed on first use
    (parsing on the server thread would make the sink the bottleneck of load tests)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes = field(repr=False)

    @cached_property
    def message(self) -> EmailMessage:
        return cast(EmailMessage, message_from_bytes(self.raw, policy=policy.default))

    def body(self, subtype: str = "plain") -> str:
        """Return the decoded ``text/<subtype>`` body ("plain" or "html"), or ""."""
        part = self.message.get_body(preferencelist=(subtype,))
        if part is None or part.get_content_subtype() != subtype:
            return ""
        content = part.get_content()
        return content if isinstance(content, str) else ""

    @property
    def text(self) -> str:
        return self.body("plain")

    @property
    def html(self) -> str:
        return self.body("html")


@dataclass(frozen=True)
class Refusal:
    """A scripted failure the sink answered (or a connection it dropped)."""

    command: str  # "MAIL", "RCPT" or "DATA"
    reply: str  # the SMTP reply sent, or "dropped"
    address: str | None = None


class _Handler:
    """aiosmtpd hooks; they run on the controller's event-loop thread."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.sink._sessions.add(id(session))
        if self.sink._take_drop("mail"):
            await _drop(server)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.sink._take_drop("rcpt"):
            await _drop(server)
        reply = self.sink._rcpt_reply(address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.sink._take_drop("data"):
            await _drop(server)
        reply = self.sink._take_data_failure()
        if reply is not None:
            return reply
        raw = envelope.original_content or b""
        self.sink._store(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=raw,
            )
        )
        while self.sink._holding:
            # The message is stored, but the sender never hears so: the window in which
            # a crashed sender cannot know whether its message went out.
            await asyncio.sleep(0.05)
        return "250 2.0.0 Message accepted for delivery"


async def _drop(server: SMTP) -> None:
    """Close the connection without a reply, as a crashed server or network would.

    Aborting the transport makes aiosmtpd cancel this very coroutine (its
    connection_lost handler), so the sleep never finishes and no reply is written.
    """
    transport = server.transport
    assert isinstance(transport, asyncio.Transport)
    transport.abort()
    await asyncio.sleep(3600)


def _free_port(host: str) -> int:
    """Return a port that is free on ``host`` right now.

    Not every aiosmtpd version accepts port=0 (its readiness check connects to the
    configured port), so ask the OS for one and hand it over.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


class SmtpSink:
    """An SMTP server on 127.0.0.1 that records what it accepts.

    Use as a context manager, or call ``start()`` and ``stop()``.
    """

    host = "127.0.0.1"

    def __init__(self, *, keep: bool = True) -> None:
        """With keep=False only count what is accepted (long benchmark runs)."""
        self.port = 0
        self.keep = keep
        self.accepted = 0
        self._sessions: set[int] = set()  # SMTP sessions that began a transaction
        self._controller: Controller | None = None
        self._lock = threading.Condition()
        self._messages: list[Received] = []
        self._refusals: list[Refusal] = []
        self._rcpt_replies: dict[str, str] = {}
        self._data_failures: list[str] = []
        self._drops: list[DropPoint] = []
        self._holding = False

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> SmtpSink:
        """Start listening; returns self."""
        last_error: Exception | None = None
        # Another process can take the probed port before we bind it; try a few.
        for _ in range(5):
            port = _free_port(self.host)
            controller = Controller(
                _Handler(self),
                hostname=self.host,
                port=port,
                ready_timeout=10.0,
                # Accept internationalised addresses, as a real relay would.
                enable_SMTPUTF8=True,
            )
            try:
                controller.start()
            except Exception as error:  # bind failures surface as various types
                last_error = error
                continue
            self._controller, self.port = controller, port
            return self
        raise RuntimeError(f"SmtpSink could not start on {self.host}: {last_error}")

    def stop(self) -> None:
        self._holding = False  # a held reply would keep the server from stopping
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- what arrived ------------------------------------------------------------

    @property
    def messages(self) -> list[Received]:
        """Messages accepted so far, oldest first (a copy)."""
        with self._lock:
            return list(self._messages)

    @property
    def refusals(self) -> list[Refusal]:
        """Scripted failures answered so far, oldest first (a copy)."""
        with self._lock:
            return list(self._refusals)

    def clear(self) -> None:
        """Forget received messages and refusals (scripted failures stay armed)."""
        with self._lock:
            self._messages.clear()
            self._refusals.clear()

    def connections_seen(self) -> int:
        """How many SMTP sessions have sent MAIL FROM so far."""
        return len(self._sessions)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Received]:
        """Wait until at least ``n`` messages have arrived; return all of them.

        Raises AssertionError naming how many arrived when the timeout passes.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self._messages) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"expected {n} message(s) within {timeout}s, got {len(self._messages)}"
                    )
                self._lock.wait(remaining)
            return list(self._messages)

    # -- scripted failures -------------------------------------------------------

    def reply_rcpt(self, address: str, reply: str | None) -> None:
        """Answer ``reply`` (e.g. "550 5.1.1 No such user") to every RCPT TO for
        ``address`` from now on; ``None`` accepts the address again."""
        with self._lock:
            if reply is None:
                self._rcpt_replies.pop(address.lower(), None)
            else:
                self._rcpt_replies[address.lower()] = reply

    def fail_next_data(self, reply: str, times: int = 1) -> None:
        """Answer ``reply`` (e.g. "451 4.3.0 Try again later") to the next ``times``
        DATA commands instead of accepting the message."""
        with self._lock:
            self._data_failures.extend([reply] * times)

    def drop_connection_next(self, times: int = 1, at: DropPoint = "data") -> None:
        """Close the next ``times`` connections without answering, at MAIL, RCPT or
        (by default) at the end of DATA, after the whole message was sent; the message
        is not recorded. The client sees SMTPServerDisconnected."""
        with self._lock:
            self._drops.extend([at] * times)

    def hold_after_accept(self, on: bool = True) -> None:
        """Keep every accepted message but withhold the 250 reply while `on`."""
        self._holding = on

    def reset(self) -> None:
        """Disarm every scripted failure and forget everything received."""
        with self._lock:
            self._rcpt_replies.clear()
            self._data_failures.clear()
            self._drops.clear()
            self._messages.clear()
            self._refusals.clear()
            self._holding = False

    # -- called by the handler on the server thread --------------------------------

    def _rcpt_reply(self, address: str) -> str | None:
        with self._lock:
            reply = self._rcpt_replies.get(address.lower())
            if reply is not None:
                self._refusals.append(Refusal("RCPT", reply, address))
            return reply

    def _take_data_failure(self) -> str | None:
        with self._lock:
            if not self._data_failures:
                return None
            reply = self._data_failures.pop(0)
            self._refusals.append(Refusal("DATA", reply))
            return reply

    def _take_drop(self, point: DropPoint) -> bool:
        with self._lock:
            if not self._drops or self._drops[0] != point:
                return False
            self._drops.pop(0)
            self._refusals.append(Refusal(point.upper(), "dropped"))
            return True

    def _store(self, received: Received) -> None:
        with self._lock:
            self.accepted += 1
            if self.keep:
                self._messages.append(received)
            self._lock.notify_all()

    def __repr__(self) -> str:
        state = f"{self.host}:{self.port}" if self._controller else "stopped"
        return f"<SmtpSink {state} messages={len(self._messages)}>"
