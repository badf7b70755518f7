"""Entry point for `flask` (it finds this file) and for `gunicorn wsgi:app`."""

from app import create_app
from app.process import tune_gc

app = create_app()
tune_gc()
