"""Signed recipient tokens: unforgeable, not enumerable, bound to contact and message.

itsdangerous signs with SECRET_KEY (HMAC); keys listed in SECRET_KEY_FALLBACKS
still verify, so links in already-sent emails survive a key rotation.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from functools import lru_cache

from itsdangerous import BadData, URLSafeSerializer

KINDS = ("unsubscribe", "preferences", "confirm", "link", "open")


@dataclass(frozen=True)
class TokenData:
    contact_id: int
    message_id: int | None
    extra: str | None = None  # a topic (confirm) or a URL (link)


def _salt(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"unknown token kind {kind!r}")
    return f"nurture.{kind}"


@lru_cache(maxsize=64)
def _signing_key(kind: str, secret_key: str) -> bytes:
    """The key itsdangerous derives for this salt (its default, "django-concat")."""
    return hashlib.sha1(_salt(kind).encode() + b"signer" + secret_key.encode()).digest()


def _sign(kind: str, secret_key: str, payload: list[object]) -> str:
    """What `URLSafeSerializer(..., salt=f"nurture.{kind}").dumps(payload)` writes for a
    payload it does not compress: same format, read back by itsdangerous in `read`.
    Written here because itsdangerous builds a new signer, derives its key and tries
    zlib on every call, and a worker signs four tokens for every email it sends."""
    value = _b64(json.dumps(payload, separators=(",", ":")).encode())
    signature = hmac.new(_signing_key(kind, secret_key), value, hashlib.sha1).digest()
    return (value + b"." + _b64(signature)).decode("ascii")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


@lru_cache(maxsize=64)
def _serializer(kind: str, secret_key: str, fallbacks: tuple[str, ...]) -> URLSafeSerializer:
    # itsdangerous signs with the last key and verifies with any of them.
    return URLSafeSerializer([*fallbacks, secret_key], salt=_salt(kind))


def make(
    kind: str,
    secret_key: str,
    contact_id: int,
    message_id: int | None = None,
    extra: str | None = None,
) -> str:
    """A token signed with `secret_key` (fallback keys only ever verify)."""
    payload: list[object] = [contact_id, message_id]
    if extra is not None:
        payload.append(extra)
    return _sign(kind, secret_key, payload)


def read(
    kind: str, token: str, secret_key: str, fallbacks: list[str] | None = None
) -> TokenData | None:
    """The token's data, or None if it is forged, truncated or of another kind."""
    try:
        payload = _serializer(kind, secret_key, tuple(fallbacks or ())).loads(token)
    except BadData:
        return None
    if (
        not isinstance(payload, list)
        or len(payload) not in (2, 3)
        or not isinstance(payload[0], int)
    ):
        return None
    extra = payload[2] if len(payload) == 3 and isinstance(payload[2], str) else None
    message_id = payload[1] if isinstance(payload[1], int) else None
    return TokenData(payload[0], message_id, extra)
