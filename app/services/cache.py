"""Caches of what immutable rows (funnel and segment versions) parse into.

One cache per database, since one process may hold several (the simulator, tests);
and every cache is emptied on any rollback, because SQLite hands a rolled-back
row's id to the next insert, so an id cached inside a failed transaction could
later name different content. Rollbacks are rare; the caches refill on demand.
"""

from __future__ import annotations

import weakref
from typing import Generic, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy.orm import Session

K = TypeVar("K")
V = TypeVar("V")

_ALL: weakref.WeakSet[PerDatabase[object, object]] = weakref.WeakSet()


class PerDatabase(Generic[K, V]):
    def __init__(self) -> None:
        self._by_bind: weakref.WeakKeyDictionary[Engine | Connection, dict[K, V]] = (
            weakref.WeakKeyDictionary()
        )
        _ALL.add(self)  # type: ignore[arg-type]

    def of(self, session: Session) -> dict[K, V]:
        """The cache for the database `session` is bound to."""
        return self._by_bind.setdefault(session.get_bind(), {})

    def clear(self) -> None:
        self._by_bind.clear()


@event.listens_for(Session, "after_rollback")
def _forget_uncommitted(_session: Session) -> None:
    for cache in list(_ALL):
        cache.clear()
