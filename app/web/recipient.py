"""Recipient pages: unsubscribe, preference centre, double opt-in (no login)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("recipient", __name__)
