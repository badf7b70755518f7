"""API keys and passwords: only hashes are stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.models import ApiKey, User

KEY_PREFIX = "nk_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str, now: datetime) -> tuple[ApiKey, str]:
    """A new key; the plain key is returned once and never stored."""
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name, prefix=plain[:10], key_hash=hash_key(plain), created_at=now)
    session.add(row)
    session.flush()
    return row, plain


def find_api_key(session: Session, plain: str) -> ApiKey | None:
    """The live key matching `plain`, or None (revoked keys do not match)."""
    row = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(plain)))
    return row if row is not None and row.revoked_at is None else None


def hash_password(password: str) -> str:
    # Werkzeug's default is scrypt: memory-hard, and no extra dependency.
    return generate_password_hash(password)


def check_password(user: User, password: str) -> bool:
    return check_password_hash(user.password_hash, password)


def create_user(session: Session, email: str, password: str, role: str, now: datetime) -> User:
    if role not in ("admin", "editor"):
        raise ValueError("role must be admin or editor")
    if len(password) < 10:
        raise ValueError("the password must be at least 10 characters long")
    user = User(email=email, password_hash=hash_password(password), role=role, created_at=now)
    session.add(user)
    session.flush()
    return user
