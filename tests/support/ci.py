"""Skip locally, fail in CI: a missing server must never turn CI green by skipping.

Kept apart from tests.support.fixtures so conftest files can import these without
importing that plugin module early (pytest then cannot assert-rewrite it and warns).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """Return True on the CI machine (CI=true), where nothing may be missing."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the current test, or fail it when running in CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this is an error, not a skip)")
    pytest.skip(reason)
