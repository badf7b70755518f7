"""API keys: created by the CLI, stored hashed, required on every route but the document."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.credentials import hash_key
from app.models import ApiKey
from app.web.api.openapi import OPERATIONS
from tests.apiclient import Api, error_of, freeze
from tests.conftest import at

NOON = at("2026-03-02 12:00")


@pytest.fixture
def api(app):
    return Api.for_app(app)


def cli_key(app, name: str) -> str:
    result = app.test_cli_runner().invoke(args=["apikeys", "create", name])
    assert result.exit_code == 0, result.output
    return result.output.strip()


def every_route() -> list[tuple[str, str]]:
    filled = {"{email}": "ada@example.com", "{key}": "b2b-nurture"}
    routes = []
    for op in OPERATIONS:
        path = op.path
        for placeholder, value in filled.items():
            path = path.replace(placeholder, value)
        routes.append((op.method.upper(), path))
    return routes


def test_it_prints_a_key_once_and_stores_only_its_hash(app, sessions):
    plain = cli_key(app, "crm-sync")
    assert re.fullmatch(r"nk_[A-Za-z0-9_-]{40,}", plain)
    with sessions() as s:
        row = s.scalar(select(ApiKey))
        assert row.name == "crm-sync" and row.key_hash == hash_key(plain)
        assert plain not in (row.key_hash, row.prefix)
    listing = app.test_cli_runner().invoke(args=["apikeys", "list"]).output
    assert "crm-sync" in listing and plain not in listing


def test_it_accepts_a_key_made_by_the_cli(app):
    api = Api(app, cli_key(app, "crm-sync"))
    assert api.get("/funnels").status_code == 200


@pytest.mark.parametrize(("method", "path"), every_route())
def test_it_answers_401_on_every_route_without_a_key(api, method, path):
    response = api.client.open(f"/api/v1{path}", method=method, json={})
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    ["Bearer nk_wrong", "Basic dXNlcjpwYXNz", "Bearer", "Bearer    ", "nk_only_the_key", ""],
)
def test_it_answers_401_for_a_wrong_or_malformed_header(api, header):
    response = api.client.get("/api/v1/funnels", headers={"Authorization": header})
    assert response.status_code == 401
    assert error_of(response)["code"] == "unauthorized"


def test_it_answers_401_before_404_for_unknown_paths(api):
    response = api.client.get("/api/v1/no-such-thing")
    assert response.status_code == 401


def test_it_refuses_a_revoked_key(app, api):
    assert api.get("/funnels").status_code == 200
    with app.extensions["nurture.sessions"]() as s:
        key_id = s.scalar(select(ApiKey.id))
    result = app.test_cli_runner().invoke(args=["apikeys", "revoke", str(key_id)])
    assert result.exit_code == 0, result.output
    response = api.get("/funnels")
    assert response.status_code == 401
    assert "revoked" in error_of(response)["message"]


def test_it_takes_the_scheme_in_any_case(api):
    assert (
        api.client.get(
            "/api/v1/funnels", headers={"Authorization": f"bearer {api.key}"}
        ).status_code
        == 200
    )


def test_it_serves_the_openapi_document_without_a_key(api):
    response = api.client.get("/api/v1/openapi.json")
    assert response.status_code == 200 and response.get_json()["openapi"] == "3.1.0"


def test_it_records_last_use_at_most_once_a_minute(api, sessions, monkeypatch):
    def last_used():
        with sessions() as s:
            return s.scalar(select(ApiKey.last_used_at))

    freeze(monkeypatch, NOON)
    api.get("/funnels")
    assert last_used() == NOON
    freeze(monkeypatch, NOON + timedelta(seconds=59))
    api.get("/funnels")
    assert last_used() == NOON
    freeze(monkeypatch, NOON + timedelta(seconds=61))
    api.get("/funnels")
    assert last_used() == NOON + timedelta(seconds=61)
