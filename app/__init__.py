"""Nurture: email marketing automation with drip funnels."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask, g

import config
from app.db import make_engine, make_session_factory


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """The Flask app: configuration from the environment, then `overrides` (tests)."""
    app = Flask(__name__, instance_path=str(config.INSTANCE), template_folder="web_templates")
    app.config.from_mapping(config.load())
    if overrides:
        app.config.update(overrides)
    logging.basicConfig(
        level=app.config["LOG_LEVEL"], format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if app.config.get("PROXY_COUNT"):
        from werkzeug.middleware.proxy_fix import ProxyFix

        n = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]
    engine = make_engine(app.config["DATABASE_URL"])
    app.extensions["nurture.engine"] = engine
    app.extensions["nurture.sessions"] = make_session_factory(engine)

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()

    from app import cli
    from app.i18n import init_babel

    init_babel(app)
    cli.register(app)
    from app.web import register_blueprints

    register_blueprints(app)
    return app
