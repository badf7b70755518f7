"""Cart abandoners: in the segment exactly when 24 hours pass without a purchase, and
into the recovery funnel at that moment. Time moves by `now` alone."""

from __future__ import annotations

from app.delivery.transport import MemoryTransport
from tests.conftest import at
from tests.helpers import ROOT, enrollment, event, messages, publish, run, subscribe
from tests.segment_helpers import SEGMENTS, history, load_segment, members

ADA = "ada@example.com"
ADDED = at("2026-03-02 10:00")


def setup(sessions) -> int:
    segment = load_segment(sessions, SEGMENTS / "cart-abandoners.yaml", ADDED)
    publish(sessions, ROOT / "funnels" / "cart-recovery.yaml", ADDED)
    subscribe(sessions, ADA, ADDED, first_name="Ada")
    return segment


def test_it_enrolls_a_cart_abandoner_when_24_hours_pass_without_a_purchase(sessions, settings):
    segment = setup(sessions)
    event(sessions, ADA, "add_to_cart", ADDED, sku="tea-42")
    outbox = MemoryTransport()

    run(sessions, settings, at("2026-03-03 09:59"), transport=outbox)
    assert members(sessions, segment) == {} and enrollment(sessions, ADA) is None

    run(sessions, settings, at("2026-03-03 10:00"), transport=outbox)
    assert members(sessions, segment) == {ADA: at("2026-03-03 10:00")}
    journey = enrollment(sessions, ADA)
    assert (journey.stage_key, journey.enrolled_at) == ("reminded", at("2026-03-03 10:00"))
    assert [m["Subject"] for m in outbox.sent] == ["You left something in your cart, Ada"]


def test_it_records_when_the_24_hours_passed_though_the_tick_comes_later(sessions, settings):
    segment = setup(sessions)
    event(sessions, ADA, "add_to_cart", ADDED)
    run(sessions, settings, at("2026-03-03 16:30"), transport=MemoryTransport())
    assert history(sessions, ADA) == [("joined", at("2026-03-03 10:00"), "time")]
    assert members(sessions, segment) == {ADA: at("2026-03-03 10:00")}
    assert enrollment(sessions, ADA).enrolled_at == at("2026-03-03 10:00")


def test_it_keeps_a_contact_who_buys_within_24_hours_out(sessions, settings):
    segment = setup(sessions)
    event(sessions, ADA, "add_to_cart", ADDED)
    event(sessions, ADA, "purchase_completed", at("2026-03-02 22:00"), amount=42)
    for day in ("2026-03-03 10:00", "2026-03-04 10:00", "2026-03-10 10:00"):
        run(sessions, settings, at(day), transport=MemoryTransport())
    assert members(sessions, segment) == {}
    assert history(sessions, ADA) == []
    assert enrollment(sessions, ADA) is None and messages(sessions, ADA) == []


def test_it_lets_a_purchase_end_the_membership_and_the_recovery(sessions, settings):
    segment = setup(sessions)
    event(sessions, ADA, "add_to_cart", ADDED)
    run(sessions, settings, at("2026-03-03 10:00"), transport=MemoryTransport())
    event(sessions, ADA, "purchase_completed", at("2026-03-03 18:00"), amount=42)
    assert members(sessions, segment) == {}
    assert history(sessions, ADA) == [
        ("joined", at("2026-03-03 10:00"), "time"),
        ("left", at("2026-03-03 18:00"), "event"),
    ]
    done = enrollment(sessions, ADA)
    assert (done.status, done.exit_label) == ("exited", "converted")
    assert [m.status for m in messages(sessions, ADA)] == ["sent", "cancelled"]


def test_it_drops_a_stale_cart_after_a_week(sessions, settings):
    segment = setup(sessions)
    event(sessions, ADA, "add_to_cart", ADDED)
    run(sessions, settings, at("2026-03-20 10:00"), transport=MemoryTransport())
    assert members(sessions, segment) == {}
    assert history(sessions, ADA) == [
        ("joined", at("2026-03-03 10:00"), "time"),
        ("left", at("2026-03-09 10:00"), "time"),
    ]
