"""Every error is JSON `{"error": {"code", "message", "field"}}` with the right 4xx,
and no input, however odd, makes the server answer 500."""

from __future__ import annotations

import pytest

from tests.apiclient import Api, error_of

EVENT = b'{"email": "ada@example.com", "type": "quiz_taken", "properties": %s}'
TINY = """\
key: tiny
name: %s
topic: nurture
entry: {on: signed_up}
exit: {on: bought}
stages:
  - key: first
    emails: [{template: ebook-welcome, after: 0m}]
"""


@pytest.fixture
def api(app):
    return Api.for_app(app)


@pytest.mark.parametrize(
    "body",
    [
        b"{bad",
        b"",
        b"   ",
        b"\xff\xfe{}",
        b'{"a": NaN}',
        b'{"a": -Infinity}',
        b'{"a": 1e999}',
        b'{"a": 1' + b"0" * 5000 + b"}",
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["syntax", "empty", "blank", "not-utf8", "nan", "infinity", "overflow", "digits", "deep"],
)
def test_it_answers_400_for_a_body_that_is_not_json(api, body):
    response = api.post("/events", data=body, content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "malformed_json"


@pytest.mark.parametrize(
    ("properties", "field"),
    [
        (b'{"note": "a\\u0000b"}', "properties.note"),
        (b'{"note": "\\ud800"}', "properties.note"),
        (b'{"a\\u0000": 1}', "properties"),
        (
            b'{"a": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}",
            "properties.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a",
        ),
    ],
    ids=["nul", "surrogate", "nul-key", "too-deep"],
)
def test_it_answers_422_for_text_or_nesting_that_cannot_be_stored(api, properties, field):
    response = api.post("/events", data=EVENT % properties, content_type="application/json")
    assert response.status_code == 422
    assert error_of(response)["field"].startswith(field)


def test_it_stores_numbers_and_text_that_can_be_stored(api):
    body = (
        EVENT
        % b'{"big": 100000000000000000000000000000, "tiny": 1e-300, "emoji": "\\ud83d\\ude00"}'
    )
    assert api.post("/events", data=body, content_type="text/plain").status_code == 202


@pytest.mark.parametrize(
    "when", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "2026-13-01T00:00Z"]
)
def test_it_answers_422_for_a_time_out_of_range(api, when):
    response = api.post(
        "/events", json={"email": "ada@example.com", "type": "quiz_taken", "occurred_at": when}
    )
    assert response.status_code == 422
    assert error_of(response)["field"] == "occurred_at"


@pytest.mark.parametrize(
    "body", [b"[]", b'"text"', b"42", b"null", b'{"events": "x"}', b'{"events": [], "x": 1}']
)
def test_it_answers_422_when_the_body_is_not_the_object_expected(api, body):
    response = api.post("/events/batch", data=body, content_type="application/json")
    assert response.status_code == 422
    assert error_of(response)["code"] == "invalid"


def test_it_answers_413_past_the_routes_body_limit(api):
    padding = b'"' + b"x" * (1024 * 1024) + b'"'
    response = api.post("/events", data=EVENT % padding, content_type="application/json")
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"
    # A batch may be larger: up to the app's MAX_CONTENT_LENGTH.
    batch = b'{"events": [%s]}' % (EVENT % padding)
    assert api.post("/events/batch", data=batch, content_type="application/json").status_code == 202


def test_it_answers_413_for_a_batch_past_the_apps_limit(app, api):
    app.config["MAX_CONTENT_LENGTH"] = 100_000
    batch = b'{"events": [%s]}' % b",".join([EVENT % b"{}"] * 2000)
    response = api.post("/events/batch", data=batch, content_type="application/json")
    assert response.status_code == 413
    assert error_of(response)["code"] == "payload_too_large"


def test_it_answers_404_in_json_for_an_unknown_path(api):
    response = api.get("/no/such/thing")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_it_answers_405_with_allow_for_an_unknown_method(api):
    response = api.call("DELETE", "/contacts/ada@example.com")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "PUT"}


def test_it_answers_a_bug_with_a_json_500(api, monkeypatch):
    def broken(session):
        raise RuntimeError("a bug")

    monkeypatch.setattr("app.web.api.events.live_funnels", broken)
    response = api.post("/events", json={"email": "ada@example.com", "type": "quiz_taken"})
    assert response.status_code == 500
    assert error_of(response)["code"] == "internal"
    assert "a bug" not in response.get_data(as_text=True)  # no internals leak


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/contacts/a%00b@example.com", None),
        ("PUT", "/contacts/%ED%A0%80@example.com", b"{}"),
        ("GET", "/funnels/%00", None),
        ("GET", "/funnels/" + "k" * 70, None),
        ("GET", "/messages?funnel=%00&email=%00", None),
        ("GET", "/messages?after=99999999999999999999", None),
        ("PUT", "/contacts/ada@example.com", b'{"attributes": {"timezone": "../../etc/passwd"}}'),
        ("PUT", "/contacts/ada@example.com", b'{"attributes": {"locale": "' + b"e" * 40 + b'"}}'),
        ("PUT", "/contacts/ada@example.com", b'{"attributes": {"' + b"k" * 100 + b'": 1}}'),
        ("POST", "/contacts/ada@example.com/consent", b'{"frequency": "1/99999999999999999999w"}'),
        ("POST", "/contacts/ada@example.com/consent", b'{"topics": {"' + b"t" * 100 + b'": true}}'),
        ("POST", "/funnels/tiny/publish", b'{"version": 99999999999999999999999}'),
        ("POST", "/funnels/tiny/publish", b"[1]"),
        ("PUT", "/funnels/tiny", (TINY % '"bad\\0name"').encode()),
        ("PUT", "/funnels/tiny", (TINY % '"bad\\uD800name"').encode()),
        ("PUT", "/funnels/tiny", TINY.replace("key: first", "key: " + "s" * 70).encode() % b"ok"),
        ("PUT", "/funnels/tiny", b"\x00\x01\x02"),
        (
            "PUT",
            "/funnels/tiny",
            b"a: &a [*a, *a]\n" + b"b: [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n" * 20,
        ),
        ("POST", "/funnels/tiny/validate", b"- " * 5000),
        ("POST", "/events", b'{"email": "' + b"a" * 400 + b'@example.com", "type": "x"}'),
    ],
)
def test_it_never_answers_500(api, method, path, body):
    assert api.put("/funnels/tiny", data=TINY % "Tiny").status_code == 201
    response = api.call(method, path, data=body, content_type="application/json")
    assert response.status_code < 500, response.data
    if response.status_code >= 400:
        error_of(response)
