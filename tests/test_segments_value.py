"""Lifetime value tiers: purchases add up, and each tier a contact joins moves them to
that tier's branch of a funnel (`if: {segment: ...}`)."""

from __future__ import annotations

from sqlalchemy import select

from app.models import Contact, StageMove
from tests.conftest import at
from tests.helpers import enrollment, event, publish, subscribe
from tests.segment_helpers import SEGMENTS, history, load_segment, members

ADA, BOB = "ada@example.com", "bob@example.com"
START = at("2026-03-02 10:00")
LOYAL = "key: loyal\nname: Loyal customers\nmatch: {sum: purchase_completed.amount, gte: 250}\n"
CARE = """\
key: customer-care
name: Customer care by value
topic: nurture
entry: {on: purchase_completed}
exit: {on: account_closed, as: closed}
stages:
  - key: regular
    transitions:
      - {if: {segment: loyal}, to: loyal}
      - {if: {segment: high-value}, to: vip}
  - key: loyal
    transitions:
      - {if: {segment: high-value}, to: vip}
  - key: vip
"""


def moves(sessions, email: str) -> list[tuple[str | None, str | None, str]]:
    with sessions() as s:
        rows = s.execute(
            select(StageMove.from_stage, StageMove.to_stage, StageMove.reason)
            .join(Contact, Contact.id == StageMove.contact_id)
            .where(Contact.email == email)
            .order_by(StageMove.id)
        ).all()
    return [tuple(row) for row in rows]


def setup(sessions) -> tuple[int, int]:
    loyal = load_segment(sessions, LOYAL, START)
    high = load_segment(sessions, SEGMENTS / "high-value.yaml", START)
    publish(sessions, CARE, START)
    return loyal, high


def test_it_moves_a_customer_up_the_tiers_as_their_purchases_add_up(sessions):
    loyal, high = setup(sessions)
    subscribe(sessions, ADA, START)
    event(sessions, ADA, "purchase_completed", at("2026-03-02 11:00"), amount=100)
    assert enrollment(sessions, ADA).stage_key == "regular"

    event(sessions, ADA, "purchase_completed", at("2026-03-05 11:00"), amount=200)
    assert enrollment(sessions, ADA).stage_key == "loyal"
    assert members(sessions, loyal) == {ADA: at("2026-03-05 11:00")}
    assert members(sessions, high) == {}

    event(sessions, ADA, "purchase_completed", at("2026-03-09 11:00"), amount=900.5)
    assert enrollment(sessions, ADA).stage_key == "vip"
    assert members(sessions, high) == {ADA: at("2026-03-09 11:00")}
    assert moves(sessions, ADA) == [
        (None, "regular", "entry"),
        ("regular", "loyal", "segment"),
        ("loyal", "vip", "segment"),
    ]


def test_it_takes_a_big_first_order_straight_to_the_top_tier(sessions):
    _, high = setup(sessions)
    event(sessions, BOB, "purchase_completed", START, amount=1500)
    assert enrollment(sessions, BOB).stage_key == "vip"
    assert members(sessions, high) == {BOB: START}
    assert [kind for kind, _, _ in history(sessions, BOB)] == ["joined", "joined"]


def test_it_counts_only_numeric_amounts(sessions):
    _, high = setup(sessions)
    event(sessions, BOB, "purchase_completed", START, amount="2000")
    event(sessions, BOB, "purchase_completed", START, amount=True, client_id="b")
    event(sessions, BOB, "purchase_completed", START, total=5000, client_id="c")
    assert members(sessions, high) == {}
    assert enrollment(sessions, BOB).stage_key == "regular"
