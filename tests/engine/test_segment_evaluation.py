"""Membership from facts at a moment, and the next moment it can change by time alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.engine.model import Condition
from app.engine.segment_checks import validate_text
from app.engine.segments import (
    EventKey,
    Facts,
    Journey,
    Needs,
    SegmentDef,
    Tally,
    Window,
    evaluate_all,
    in_order,
    next_check,
    tally,
)

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
CART = Window(EventKey("add_to_cart"))
PURCHASES = Window(EventKey("purchase_completed"))


def define(key: str, match: str) -> SegmentDef:
    result = validate_text(f"key: {key}\nname: {key}\nmatch: {match}\n")
    assert result.segment is not None, result.problems
    return result.segment


def facts(**overrides: object) -> Facts:
    values: dict[str, object] = {"contact": {}, "created_at": T0 - 365 * DAY}
    values.update(overrides)
    return Facts(**values)  # type: ignore[arg-type]


def verdict(segment: SegmentDef, at: datetime, **overrides: object):
    return evaluate_all([segment], facts(**overrides), at)[segment.key]


ABANDONERS = define(
    "cart", "{performed: add_to_cart, not_followed_by: purchase_completed, for: 24h, within: 7d}"
)


def test_it_makes_a_cart_abandoner_exactly_when_the_24_hours_pass() -> None:
    added = {CART: Tally(1, 0.0, T0, T0)}
    early = verdict(ABANDONERS, T0 + 23 * HOUR, tallies=added)
    assert (early.member, early.next_check) == (False, T0 + DAY)
    due = verdict(ABANDONERS, T0 + DAY, tallies=added)
    assert (due.member, due.next_check) == (True, T0 + 7 * DAY)
    stale = verdict(ABANDONERS, T0 + 7 * DAY, tallies=added)
    assert (stale.member, stale.next_check) == (False, None)


def test_it_keeps_a_buyer_out_of_the_cart_abandoners() -> None:
    bought = {CART: Tally(1, 0.0, T0, T0), PURCHASES: Tally(1, 0.0, T0 + HOUR, T0 + HOUR)}
    assert verdict(ABANDONERS, T0 + 2 * DAY, tallies=bought) == verdict(
        ABANDONERS, T0 + 2 * DAY, tallies={}
    )
    assert not verdict(ABANDONERS, T0 + 2 * DAY, tallies=bought).member
    # A new cart after the purchase starts the wait again.
    again = {CART: Tally(2, 0.0, T0, T0 + 3 * HOUR), PURCHASES: bought[PURCHASES]}
    assert verdict(ABANDONERS, T0 + 4 * HOUR, tallies=again).next_check == T0 + 27 * HOUR


def test_it_counts_within_a_window_and_knows_when_the_window_moves() -> None:
    busy = define("busy", "{performed: page_viewed, at_least: 2, within: 7d}")
    window = Window(EventKey("page_viewed"), 7 * DAY)
    two = {window: Tally(2, 0.0, T0, T0 + DAY)}
    member = verdict(busy, T0 + 2 * DAY, tallies=two)
    assert (member.member, member.next_check) == (True, T0 + 7 * DAY)  # the oldest leaves
    one = verdict(busy, T0 + DAY, tallies={window: Tally(1, 0.0, T0, T0)})
    assert (one.member, one.next_check) == (False, None)  # time only makes fewer


def test_it_waits_for_the_newest_event_to_leave_a_window_that_must_be_empty() -> None:
    quiet = define("quiet", "{not_performed: email_clicked, since: 60d}")
    window = Window(EventKey("email_clicked"), 60 * DAY)
    clicks = {window: Tally(3, 0.0, T0, T0 + 10 * DAY)}
    found = verdict(quiet, T0 + 20 * DAY, tallies=clicks)
    assert (found.member, found.next_check) == (False, T0 + 70 * DAY)
    assert verdict(quiet, T0, tallies={}).member


def test_it_sums_a_property_for_lifetime_value() -> None:
    value = define("vip", "{sum: purchase_completed.amount, gt: 1000}")
    window = Window(EventKey("purchase_completed"), None, "amount")
    assert not verdict(value, T0, tallies={window: Tally(2, 1000.0, T0, T0)}).member
    found = verdict(value, T0, tallies={window: Tally(3, 1000.5, T0, T0)})
    assert (found.member, found.next_check) == (True, None)


def test_it_tallies_events_in_the_window_that_match() -> None:
    events = [
        ("purchase_completed", T0 - 10 * DAY, {"amount": 500, "currency": "EUR"}),
        ("purchase_completed", T0 - DAY, {"amount": 700, "currency": "EUR"}),
        ("purchase_completed", T0 - HOUR, {"amount": "lots", "currency": "EUR"}),
        ("purchase_completed", T0 - HOUR, {"amount": 99, "currency": "USD"}),
        ("purchase_completed", T0 + HOUR, {"amount": 1, "currency": "EUR"}),  # after `at`
        ("add_to_cart", T0 - HOUR, {"amount": 5}),
    ]
    euros = EventKey("purchase_completed", (Condition("currency", "eq", "EUR"),))
    lifetime = tally(events, Window(euros, None, "amount"), T0)
    assert lifetime == Tally(3, 1200.0, T0 - 10 * DAY, T0 - HOUR)
    week = tally(events, Window(euros, 7 * DAY, "amount"), T0)
    assert week == Tally(2, 700.0, T0 - DAY, T0 - HOUR)


def test_it_tells_first_and_last_seen_apart() -> None:
    new = define("new", "{first_seen: {within: 7d}}")
    lapsed = define("lapsed", "{last_seen: {before: 30d}}")
    joined = T0 - 2 * DAY
    found = verdict(new, T0, created_at=joined)
    assert (found.member, found.next_check) == (True, joined + 7 * DAY)
    active = verdict(lapsed, T0, created_at=joined, last_seen=T0 - DAY)
    assert (active.member, active.next_check) == (False, T0 + 29 * DAY)
    # Never did anything: last seen when they became known.
    assert verdict(lapsed, T0, created_at=T0 - 31 * DAY).member


def test_it_reads_attributes_consent_and_funnel_journeys() -> None:
    b2b = define("b2b", "{contact: {country: DE, company_size: {gte: 50}}}")
    assert verdict(b2b, T0, contact={"country": "DE", "company_size": 120}).member
    assert not verdict(b2b, T0, contact={"country": "DE", "company_size": "120"}).member
    readers = define("readers", "{consent: {status: active, topic: newsletter}}")
    assert verdict(readers, T0, topics={"newsletter": "subscribed"}).member
    assert not verdict(readers, T0, status="bounced", topics={"newsletter": "subscribed"}).member
    dormant = define("dormant", "{in_stage: {funnel: b2b-nurture, stage: dormant}}")
    journeys = {"b2b-nurture": (Journey("exited", "dormant", "converted"),)}
    assert not verdict(dormant, T0, journeys=journeys).member
    converted = define("won", "{converted_in: b2b-nurture}")
    assert verdict(converted, T0, journeys=journeys).member


def test_it_evaluates_segments_after_the_ones_they_build_on() -> None:
    vip = define("vip", "{sum: purchase_completed.amount, gt: 1000}")
    quiet_vip = define("a-quiet-vip", "{all: [{segment: vip}, {not: {segment: buyers}}]}")
    buyers = define("buyers", "{performed: purchase_completed, within: 30d}")
    assert [s.key for s in in_order([quiet_vip, vip, buyers])] == ["buyers", "vip", "a-quiet-vip"]
    window = Window(EventKey("purchase_completed"), None, "amount")
    recent = Window(EventKey("purchase_completed"), 30 * DAY)
    tallies = {window: Tally(1, 2000.0, T0 - 40 * DAY, T0 - 40 * DAY)}
    verdicts = evaluate_all([quiet_vip, vip, buyers], facts(tallies=tallies), T0)
    assert {k: v.member for k, v in verdicts.items()} == {
        "buyers": False, "vip": True, "a-quiet-vip": True,
    }  # fmt: skip
    tallies[recent] = Tally(1, 0.0, T0 - DAY, T0 - DAY)
    verdicts = evaluate_all([quiet_vip, vip, buyers], facts(tallies=tallies), T0)
    assert not verdicts["a-quiet-vip"].member
    assert next_check(verdicts.values()) == T0 + 29 * DAY


def test_it_says_what_a_set_of_segments_needs() -> None:
    needs = Needs.of([ABANDONERS, define("l", "{last_seen: {within: 7d}}")])
    assert needs.windows == {CART, PURCHASES}
    assert needs.last_seen and not needs.journeys and not needs.topics
    assert needs.moved_by("page_viewed")  # last_seen: any event counts
    cart_only = Needs.of([ABANDONERS])
    assert cart_only.moved_by("purchase_completed") and not cart_only.moved_by("page_viewed")
