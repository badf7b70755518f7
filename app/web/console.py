"""The marketer console (server-rendered, logged in, CSRF-protected).

This module owns the blueprint, login and the helpers every console page shares;
the pages themselves live in `console_<area>.py` modules, which add their routes to
`bp` and are imported at the bottom of this file.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf import CSRFProtect, FlaskForm
from flask_wtf.csrf import CSRFError
from sqlalchemy import select
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from app import clock, credentials, database
from app.models import User
from app.services.contacts import Actor

bp = Blueprint("console", __name__, url_prefix="/console")
login_manager = LoginManager()
login_manager.login_view = "console.login"
login_manager.login_message = "Please log in to use the console."
csrf = CSRFProtect()

# Pages reachable without a session (everything else redirects to the login page).
PUBLIC_ENDPOINTS = {"console.login"}
F = TypeVar("F", bound=Callable[..., Any])


class LoginThrottle:
    """Failed logins per key within a sliding window, in this process's memory.

    A tiny in-process limiter rather than Flask-Limiter: only one route needs it, it
    must count failures (not requests), and a dependency with storage back-ends is
    more than that needs. With several web processes each keeps its own count, so the
    effective limit is per process; that still turns a password-guessing run from
    thousands of tries a minute into a handful.
    """

    MAX_KEYS = 10_000  # bounds memory under a spray of made-up addresses

    def __init__(self, max_failures: int, window: timedelta) -> None:
        self.max_failures, self.window = max_failures, window
        self._failures: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def retry_after(self, keys: list[tuple[str, int]], now: datetime) -> int | None:
        """Seconds until the first of `keys` (key, limit) is under its limit, or None."""
        with self._lock:
            waits = []
            for key, limit in keys:
                recent = self._recent(key, now)
                if len(recent) >= limit:
                    waits.append((recent[0] + self.window - now).total_seconds())
            return max(1, int(max(waits)) + 1) if waits else None

    def failed(self, keys: list[str], now: datetime) -> None:
        with self._lock:
            if len(self._failures) > self.MAX_KEYS:
                self._failures.clear()
            for key in keys:
                self._recent(key, now).append(now)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        recent = self._failures.setdefault(key, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        return recent


@bp.record_once
def _setup(state: object) -> None:
    app: Flask = state.app  # type: ignore[attr-defined]
    login_manager.init_app(app)
    csrf.init_app(app)
    per_minute = int(app.config.get("LOGIN_FAILURES_PER_MINUTE", 5))
    app.extensions["nurture.login_throttle"] = LoginThrottle(per_minute, timedelta(minutes=1))


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    return database.session().get(User, int(user_id)) if user_id.isdigit() else None


@bp.before_request
def _require_login() -> Response | None:
    """Every console page needs a session, so a new page cannot forget to ask for one."""
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    return cast(Response, login_manager.unauthorized())


def admin_required(view: F) -> F:
    """Only admins manage users and API keys; an editor gets 403."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if getattr(current_user, "role", None) != "admin":
            abort(403)
        return view(*args, **kwargs)

    return cast(F, wrapped)


def console_actor() -> Actor:
    """Who is changing consent from the console, for the ledger."""
    return Actor(
        source="console",
        ip=request.remote_addr,
        user_agent=request.user_agent.string or None,
        actor=current_user.email,
    )


def templates_dir() -> str:
    return str(current_app.config["TEMPLATES_DIR"])


@bp.app_template_filter("console_time")
def console_time(value: datetime | None) -> str:
    """Times in the console are UTC, and say so."""
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "–"


# -- Login ------------------------------------------------------------------------


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


def _throttle() -> LoginThrottle:
    throttle: LoginThrottle = current_app.extensions["nurture.login_throttle"]
    return throttle


def _safe_next(target: str | None) -> str:
    """Only a path inside the console: an open redirect would help phishing."""
    if target and target.startswith("/console") and not urlsplit(target).netloc:
        return target
    return url_for("console.home")


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int, dict[str, str]]:
    form = LoginForm()
    if not form.validate_on_submit():
        if request.method == "POST":
            flash("Enter both your email and your password.", "error")
        return render_template("console/login.html", form=form)
    now, email = clock.utcnow(), (form.email.data or "").strip().lower()
    ip = request.remote_addr or "unknown"
    # Per address and IP (guessing one password), and per IP (spraying many addresses).
    per_email, per_ip = f"{ip}|{email}", f"ip|{ip}"
    throttle = _throttle()
    limit = throttle.max_failures
    wait = throttle.retry_after([(per_email, limit), (per_ip, limit * 4)], now)
    if wait is not None:
        page = render_template("console/login.html", form=form, retry_after=wait)
        return page, 429, {"Retry-After": str(wait)}
    session = database.session()
    user = session.scalar(select(User).where(User.email == email))
    if user is None or not credentials.check_password(user, form.password.data or ""):
        throttle.failed([per_email, per_ip], now)
        flash("That email and password do not match a console user.", "error")
        return render_template("console/login.html", form=form)
    throttle.succeeded(per_email)
    user.last_login_at = now
    session.commit()
    login_user(user)
    return redirect(_safe_next(request.args.get("next")))


@bp.post("/logout")
def logout() -> Response:
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("console.login"))


# -- Errors in plain words ---------------------------------------------------------


@bp.errorhandler(CSRFError)
def _csrf_error(_error: CSRFError) -> tuple[str, int]:
    message = (
        "This form could not be accepted because its security token is missing or out of "
        "date. Go back, reload the page and try again."
    )
    return render_template("console/error.html", title="Form expired", message=message), 400


@bp.errorhandler(403)
def _forbidden(_error: Exception) -> tuple[str, int]:
    message = "Only an admin can open this page. Ask an admin if you need a change here."
    return render_template("console/error.html", title="Not allowed", message=message), 403


@bp.errorhandler(404)
def _not_found(_error: Exception) -> tuple[str, int]:
    message = "There is nothing here. It may have been renamed or removed."
    return render_template("console/error.html", title="Not found", message=message), 404


# The page modules register their routes on `bp` as they are imported.
from app.web import (  # noqa: E402
    console_admin,
    console_analytics,
    console_contacts,
    console_editor,
    console_funnels,
    console_templates,
    console_versions,
)

__all__ = [
    "bp",
    "csrf",
    "login_manager",
    "console_admin",
    "console_analytics",
    "console_contacts",
    "console_editor",
    "console_funnels",
    "console_templates",
    "console_versions",
]
