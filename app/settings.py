"""The engine's settings, read once from the Flask config (or built by tests)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from app.delivery.render import Templates
from app.delivery.transport import SmtpSettings
from app.engine.caps import parse_caps
from app.engine.model import Cap


@dataclass
class EngineSettings:
    public_url: str
    secret_key: str
    mail_from: str
    templates: Templates
    global_caps: tuple[Cap, ...] = ()
    secret_key_fallbacks: list[str] = field(default_factory=list)
    batch: int = 100
    sending_lease: timedelta = timedelta(minutes=10)
    retry_give_up: timedelta = timedelta(days=3)
    # What to do with a message a crashed worker left in `sending`: "unknown"
    # (default: never resend, since the server may have accepted it) or "resend".
    recovery: str = "unknown"
    smtp: SmtpSettings | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> EngineSettings:
        return cls(
            public_url=cfg["PUBLIC_URL"],
            secret_key=cfg["SECRET_KEY"],
            secret_key_fallbacks=list(cfg.get("SECRET_KEY_FALLBACKS", [])),
            mail_from=cfg["MAIL_FROM"],
            templates=Templates(cfg["TEMPLATES_DIR"]),
            global_caps=parse_caps(cfg.get("GLOBAL_CAPS", "")),
            batch=cfg.get("WORKER_BATCH", 100),
            sending_lease=cfg.get("SENDING_LEASE", timedelta(minutes=10)),
            retry_give_up=cfg.get("RETRY_GIVE_UP", timedelta(days=3)),
            recovery=cfg.get("SENDING_RECOVERY", "unknown"),
            smtp=SmtpSettings(
                host=cfg["SMTP_HOST"],
                port=cfg["SMTP_PORT"],
                username=cfg.get("SMTP_USERNAME"),
                password=cfg.get("SMTP_PASSWORD"),
                starttls=cfg.get("SMTP_STARTTLS", False),
                timeout=cfg.get("SMTP_TIMEOUT", 30),
                connections=cfg.get("SMTP_CONNECTIONS", 4),
            ),
        )
