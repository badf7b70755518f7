"""Every setting comes from the environment, with a safe default (12-factor).

A malformed value fails loudly at start-up with the variable's name, rather than
being ignored. The README documents each key.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent
INSTANCE = ROOT / "instance"


class ConfigError(ValueError):
    """A malformed environment variable."""


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r}: expected true or false")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def _duration(env: Mapping[str, str], name: str, default: str) -> timedelta:
    from app.engine.durations import parse_duration

    raw = env.get(name) or default
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r}: {exc}") from None


def _secret_key(env: Mapping[str, str]) -> str:
    """SECRET_KEY from the environment, else one generated once and kept in instance/.

    Generating (rather than shipping a default) keeps any secret out of the repo, and
    keeping it on disk keeps links in already-sent emails valid across restarts.
    """
    if env.get("SECRET_KEY"):
        return env["SECRET_KEY"]
    path = INSTANCE / "secret_key"
    if path.exists():
        return path.read_text().strip()
    INSTANCE.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    path.write_text(key)
    path.chmod(0o600)
    return key


def load(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Read the whole configuration; raises ConfigError on a malformed value."""
    from app.engine.caps import parse_caps

    env = os.environ if env is None else env
    public_url = (env.get("PUBLIC_URL") or "http://127.0.0.1:5000").rstrip("/")
    if urlparse(public_url).scheme not in ("http", "https"):
        raise ConfigError(f"PUBLIC_URL={public_url!r}: expected an http(s) URL")
    global_caps = env.get("GLOBAL_CAPS", "1/1d,3/7d")
    try:
        parse_caps(global_caps)
    except ValueError as exc:
        raise ConfigError(f"GLOBAL_CAPS={global_caps!r}: {exc}") from None
    https = public_url.startswith("https://")
    return {
        "DATABASE_URL": env.get("DATABASE_URL") or f"sqlite:///{INSTANCE / 'nurture.db'}",
        "SECRET_KEY": _secret_key(env),
        "SECRET_KEY_FALLBACKS": [k for k in env.get("SECRET_KEY_FALLBACKS", "").split(",") if k],
        "PUBLIC_URL": public_url,
        "MAIL_FROM": env.get("MAIL_FROM") or "Nurture <nurture@localhost>",
        "SMTP_HOST": env.get("SMTP_HOST") or "localhost",
        "SMTP_PORT": _int(env, "SMTP_PORT", 25, 1),
        "SMTP_USERNAME": env.get("SMTP_USERNAME") or None,
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD") or None,
        "SMTP_STARTTLS": _bool(env, "SMTP_STARTTLS", False),
        "SMTP_TIMEOUT": _int(env, "SMTP_TIMEOUT", 30, 1),
        "SMTP_CONNECTIONS": _int(env, "SMTP_CONNECTIONS", 4, 1),
        "GLOBAL_CAPS": global_caps,
        "TEMPLATES_DIR": env.get("TEMPLATES_DIR") or str(ROOT / "templates" / "email"),
        "FUNNELS_DIR": env.get("FUNNELS_DIR") or str(ROOT / "funnels"),
        "WORKER_INTERVAL": _int(env, "WORKER_INTERVAL", 30, 1),
        "WORKER_BATCH": _int(env, "WORKER_BATCH", 500, 1),
        "RETRY_GIVE_UP": _duration(env, "RETRY_GIVE_UP", "3d"),
        "SENDING_LEASE": _duration(env, "SENDING_LEASE", "10m"),
        "DOUBLE_OPT_IN_TOPICS": [t for t in env.get("DOUBLE_OPT_IN_TOPICS", "").split(",") if t],
        "MAX_CONTENT_LENGTH": _int(env, "MAX_CONTENT_LENGTH", 5 * 1024 * 1024, 1024),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": https,
        "REMEMBER_COOKIE_SECURE": https,
        "WTF_CSRF_TIME_LIMIT": None,
        "LOG_LEVEL": env.get("LOG_LEVEL") or "INFO",
        # How many reverse proxies sit in front of the web app (their X-Forwarded-*
        # headers are trusted, so login limits and the ledger see the real client IP).
        "PROXY_COUNT": _int(env, "PROXY_COUNT", 0),
        "LOGIN_FAILURES_PER_MINUTE": _int(env, "LOGIN_FAILURES_PER_MINUTE", 5, 1),
    }
