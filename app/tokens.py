"""Signed recipient tokens: unforgeable, not enumerable, bound to contact and message.

itsdangerous signs with SECRET_KEY (HMAC); keys listed in SECRET_KEY_FALLBACKS
still verify, so links in already-sent emails survive a key rotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from itsdangerous import BadData, Signer, URLSafeSerializer

KINDS = ("unsubscribe", "preferences", "confirm", "link", "open")


@dataclass(frozen=True)
class TokenData:
    contact_id: int
    message_id: int | None
    extra: str | None = None  # a topic (confirm) or a URL (link)


class _KeyedSigner(Signer):
    """itsdangerous's signer, deriving each key once rather than once per signature
    (a worker signs several links for every email it sends)."""

    def derive_key(self, secret_key: str | bytes | None = None) -> bytes:
        cache: dict[str | bytes | None, bytes] = self.__dict__.setdefault("_derived", {})
        if secret_key not in cache:
            cache[secret_key] = super().derive_key(secret_key)
        return cache[secret_key]


def _serializer(kind: str, secret_key: str, fallbacks: list[str]) -> URLSafeSerializer:
    return _cached_serializer(kind, secret_key, tuple(fallbacks))


@lru_cache(maxsize=64)
def _cached_serializer(kind: str, secret_key: str, fallbacks: tuple[str, ...]) -> URLSafeSerializer:
    if kind not in KINDS:
        raise ValueError(f"unknown token kind {kind!r}")
    # itsdangerous signs with the last key and verifies with any of them.
    keys = [*fallbacks, secret_key]
    return URLSafeSerializer(keys, salt=f"nurture.{kind}", signer=_KeyedSigner)


def make(
    kind: str,
    secret_key: str,
    contact_id: int,
    message_id: int | None = None,
    extra: str | None = None,
    fallbacks: list[str] | None = None,
) -> str:
    payload: list[object] = [contact_id, message_id]
    if extra is not None:
        payload.append(extra)
    return str(_serializer(kind, secret_key, fallbacks or []).dumps(payload))


def read(
    kind: str, token: str, secret_key: str, fallbacks: list[str] | None = None
) -> TokenData | None:
    """The token's data, or None if it is forged, truncated or of another kind."""
    try:
        payload = _serializer(kind, secret_key, fallbacks or []).loads(token)
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
