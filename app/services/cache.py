"""Caches of what immutable rows (funnel and segment versions) parse into.

One cache per database, since one process may hold several (the simulator, tests);
and every cache is emptied on any rollback, because SQLite hands a rolled-back
row's id to the next insert, so an id cached inside a failed transaction could
later name different content. Rollbacks are rare; the caches refill on demand.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

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


class _Version(Protocol):
    id: Any
    definition: Any


R = TypeVar("R", bound=_Version)


class Definitions(Generic[R, V]):
    """What the immutable `definition` of a version row (of `model`) parses into, once
    per database and version id."""

    def __init__(self, model: type[R], parse: Callable[[dict[str, Any]], V]) -> None:
        self.model, self.parse = model, parse
        self._cache: PerDatabase[int, V] = PerDatabase()

    def of(self, session: Session, version: R) -> V:
        cache = self._cache.of(session)
        found = cache.get(version.id)
        if found is None:
            found = cache[version.id] = self.parse(version.definition)
        return found

    def of_id(self, session: Session, version_id: int) -> V:
        found = self._cache.of(session).get(version_id)
        if found is not None:
            return found
        version = session.get(self.model, version_id)
        assert version is not None, f"{self.model.__name__} {version_id} is missing"
        return self.of(session, version)


@event.listens_for(Session, "after_rollback")
def _forget_uncommitted(_session: Session) -> None:
    for cache in list(_ALL):
        cache.clear()
