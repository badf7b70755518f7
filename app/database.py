"""Request- and command-scoped access to the database from inside the Flask app."""

from __future__ import annotations

from flask import current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker


def sessions() -> sessionmaker[Session]:
    factory: sessionmaker[Session] = current_app.extensions["nurture.sessions"]
    return factory


def engine() -> Engine:
    eng: Engine = current_app.extensions["nurture.engine"]
    return eng


def session() -> Session:
    """The session of the current request or command, closed at teardown."""
    if "db_session" not in g:
        g.db_session = sessions()()
    s: Session = g.db_session
    return s
