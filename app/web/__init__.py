"""Blueprints: recipient pages, the JSON API, the marketer console, health."""

from __future__ import annotations

from flask import Flask, jsonify, redirect, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response

from app import database
from app.models import WorkerHeartbeat


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
        """Web health (the database answers) plus each worker's last tick, so operators
        see live workers without a shell."""
        try:
            beats = (
                database.session()
                .scalars(select(WorkerHeartbeat).order_by(WorkerHeartbeat.worker_id))
                .all()
            )
        except Exception as exc:  # any database failure means unhealthy
            return jsonify(status="error", database=str(exc)), 503
        workers = [
            {
                "id": b.worker_id,
                "host": b.hostname,
                "pid": b.pid,
                "started_at": b.started_at.isoformat(),
                "last_tick_at": b.last_tick_at.isoformat() if b.last_tick_at else None,
                "last_tick_ms": b.last_tick_ms,
                "last_report": b.last_report,
            }
            for b in beats
        ]
        return jsonify(status="ok", database="ok", workers=workers), 200
