"""Typed failures shared by the engine and its adapters."""

from __future__ import annotations


class TransportError(Exception):
    """A delivery failure.

    ``permanent`` is True for 5xx answers (do not retry); False for 4xx answers,
    time-outs and lost connections (retry with backoff). ``code`` is the SMTP reply
    code where there was one. ``recipient`` is True when the server refused the
    recipient address itself (RCPT TO), which makes a 550/551/553 a hard bounce.
    """

    def __init__(
        self, message: str, *, permanent: bool, code: int | None = None, recipient: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code
        self.recipient = recipient
