"""The marketer console (server-rendered, logged in, CSRF-protected)."""

from __future__ import annotations

from flask import Blueprint, Flask, flash, redirect, render_template, request, url_for
from flask_login import LoginManager, current_user, login_required, login_user, logout_user
from flask_wtf import CSRFProtect, FlaskForm
from sqlalchemy import func, select
from werkzeug.wrappers import Response
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired

from app import credentials, database
from app.clock import utcnow
from app.models import Enrollment, Funnel, FunnelVersion, User

bp = Blueprint("console", __name__, url_prefix="/console")
login_manager = LoginManager()
login_manager.login_view = "console.login"
login_manager.login_message = "Please log in to use the console."
csrf = CSRFProtect()


@bp.record_once
def _setup(state: object) -> None:
    app: Flask = state.app  # type: ignore[attr-defined]
    login_manager.init_app(app)
    csrf.init_app(app)


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    return database.session().get(User, int(user_id)) if user_id.isdigit() else None


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired()])
    password = PasswordField("Password", validators=[DataRequired()])


@bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response:
    form = LoginForm()
    if form.validate_on_submit():
        session = database.session()
        user = session.scalar(select(User).where(User.email == (form.email.data or "").strip().lower()))
        if user is not None and credentials.check_password(user, form.password.data or ""):
            user.last_login_at = utcnow()
            session.commit()
            login_user(user)
            return redirect(url_for("console.home"))
        flash("That email and password do not match a console user.", "error")
    return render_template("console/login.html", form=form)


@bp.post("/logout")
@login_required
def logout() -> Response:
    logout_user()
    return redirect(url_for("console.login"))


@bp.get("/")
@login_required
def home() -> str:
    session = database.session()
    funnels = session.execute(
        select(Funnel, FunnelVersion.number).outerjoin(FunnelVersion, FunnelVersion.id == Funnel.live_version_id)
        .order_by(Funnel.key)
    ).all()
    active = dict(
        session.execute(
            select(Enrollment.funnel_id, func.count()).where(Enrollment.status == "active").group_by(Enrollment.funnel_id)
        ).all()
    )
    return render_template("console/home.html", funnels=funnels, active=active, user=current_user,
                           path=request.path)
