"""Entry point for `flask` (it finds this file) and for `gunicorn wsgi:app`."""

from app import create_app

app = create_app()
