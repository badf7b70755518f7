"""GET /segments, /segments/<key> (size, recent joins and leaves), /segments/<key>/members."""

from __future__ import annotations

import pytest

from tests.apiclient import Api, error_of, freeze
from tests.conftest import at
from tests.segment_helpers import SEGMENTS, bring_up_to_date, load_segment

T0 = at("2026-03-02 10:00")


@pytest.fixture
def api(app, monkeypatch, sessions):
    """The example segments; five contacts added to their carts, Eve bought after."""
    freeze(monkeypatch, T0)
    for path in sorted(SEGMENTS.glob("*.yaml")):
        load_segment(sessions, path, T0)
    client = Api.for_app(app)
    for name in ("ada", "bob", "cy", "dee", "eve"):
        event = {"email": f"{name}@example.com", "type": "add_to_cart", "id": name}
        event["occurred_at"] = T0.isoformat()
        assert client.post("/events", json=event).status_code == 202
    bring_up_to_date(sessions, at("2026-03-03 10:00"))
    buy = {"email": "eve@example.com", "type": "purchase_completed", "properties": {"amount": 5}}
    freeze(monkeypatch, at("2026-03-03 12:00"))
    assert client.post("/events", json=buy).status_code == 202
    return client


def test_it_lists_every_segment_with_its_size(api):
    response = api.get("/segments")
    assert response.status_code == 200
    listed = {s["key"]: s for s in response.get_json()["segments"]}
    assert sorted(listed) == ["cart-abandoners", "dormant-readers", "high-value"]
    assert listed["cart-abandoners"] == {
        "key": "cart-abandoners",
        "name": "Cart abandoners",
        "description": "Added to cart, no purchase within 24 hours of it.",
        "status": "live",
        "live_version": 1,
        "size": 4,
        "updated_at": "2026-03-02T10:00:00+00:00",
    }
    assert listed["high-value"]["size"] == 0


def test_it_shows_a_segment_with_its_latest_joins_and_leaves(api):
    body = api.get("/segments/cart-abandoners").get_json()
    assert body["size"] == 4
    assert body["definition"]["match"]["not_followed_by"] == "purchase_completed"
    assert body["source"].startswith("# Added something to the cart")
    assert body["left"] == [{"email": "eve@example.com", "at": "2026-03-03T12:00:00+00:00"}]
    assert len(body["joined"]) == 5
    assert {j["at"] for j in body["joined"]} == {"2026-03-03T10:00:00+00:00"}


def test_it_pages_through_the_members(api):
    first = api.get("/segments/cart-abandoners/members?limit=3").get_json()
    assert [m["email"] for m in first["members"]] == [
        "ada@example.com", "bob@example.com", "cy@example.com",
    ]  # fmt: skip
    assert first["members"][0]["since"] == "2026-03-03T10:00:00+00:00"
    rest = api.get(f"/segments/cart-abandoners/members?after={first['next_after']}").get_json()
    assert [m["email"] for m in rest["members"]] == ["dee@example.com"]
    assert rest["next_after"] is None


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/segments/nowhere", 404, "key"),
        ("/segments/Not%20A%20Key/members", 404, "key"),
        ("/segments/cart-abandoners/members?limit=0", 422, "limit"),
        ("/segments/cart-abandoners/members?limit=ten", 422, "limit"),
        ("/segments/cart-abandoners/members?page=2", 422, "page"),
    ],
)
def test_it_answers_mistakes_in_the_error_format(api, path, status, field):
    response = api.get(path)
    assert response.status_code == status
    assert error_of(response)["field"] == field


def test_it_needs_an_api_key(api):
    assert api.get("/segments", key="wrong").status_code == 401
