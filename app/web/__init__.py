"""Blueprints: recipient pages, the JSON API, the marketer console, health."""

from __future__ import annotations

from flask import Flask, jsonify, redirect, url_for
from sqlalchemy import text
from werkzeug.wrappers import Response

from app import database


def register_blueprints(app: Flask) -> None:
    from app.web.api import bp as api_bp
    from app.web.console import bp as console_bp
    from app.web.console import csrf
    from app.web.recipient import bp as recipient_bp
    from app.web.tracking import bp as tracking_bp

    app.register_blueprint(console_bp)
    app.register_blueprint(recipient_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(tracking_bp)
    # The API authenticates by bearer key and recipient pages by signed token (and the
    # RFC 8058 one-click POST comes without cookies), so CSRF applies to neither.
    csrf.exempt(api_bp)
    csrf.exempt(recipient_bp)
    csrf.exempt(tracking_bp)

    @app.get("/")
    def index() -> Response:
        return redirect(url_for("console.home"))

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        try:
            database.session().execute(text("SELECT 1"))
        except Exception as exc:  # any database failure means unhealthy
            return jsonify(status="error", database=str(exc)), 503
        return jsonify(status="ok"), 200
