"""Membership kept current incrementally: only contacts touched by an event, whose
time-based condition comes due, or who changed otherwise are looked at again."""

from __future__ import annotations

from sqlalchemy import select

from app.delivery.transport import MemoryTransport
from app.models import SegmentCheck
from app.services import contacts as contacts_svc
from tests.conftest import at
from tests.helpers import ROOT, enrollment, event, publish, run, subscribe
from tests.segment_helpers import SEGMENTS, bring_up_to_date, history, load_segment, members

ADA, BOB, CY = "ada@example.com", "bob@example.com", "cy@example.com"
T0 = at("2026-03-02 10:00")
GERMANS = "key: germans\nname: In Germany\nmatch: {contact: {country: DE}}\n"
NEWSLETTER = "key: readers\nname: Readers\nmatch: {consent: {status: active, topic: newsletter}}\n"


def due(sessions) -> dict[int, object]:
    with sessions() as s:
        rows = s.scalars(select(SegmentCheck).where(SegmentCheck.due_at.is_not(None)))
        return {row.contact_id: row.due_at for row in rows}


def test_it_looks_again_only_at_contacts_whose_moment_has_come(sessions):
    load_segment(sessions, SEGMENTS / "cart-abandoners.yaml", T0)
    event(sessions, ADA, "add_to_cart", T0)
    event(sessions, BOB, "add_to_cart", at("2026-03-02 22:00"))
    event(sessions, CY, "page_viewed", T0)  # nothing any segment counts
    bring_up_to_date(sessions, T0)  # the publish made everyone due once
    assert sorted(due(sessions).values()) == [at("2026-03-03 10:00"), at("2026-03-03 22:00")]

    assert bring_up_to_date(sessions, at("2026-03-03 09:00")) == 0
    assert bring_up_to_date(sessions, at("2026-03-03 12:00")) == 1  # Ada alone
    assert bring_up_to_date(sessions, at("2026-03-03 12:00")) == 0
    assert [kind for kind, _, _ in history(sessions, ADA)] == ["joined"]
    assert history(sessions, BOB) == []


def test_it_evaluates_existing_contacts_when_a_segment_is_published(sessions):
    event(sessions, ADA, "purchase_completed", T0, amount=600)
    event(sessions, ADA, "purchase_completed", T0, amount=600, client_id="2")
    event(sessions, BOB, "purchase_completed", T0, amount=50)
    segment = load_segment(sessions, SEGMENTS / "high-value.yaml", at("2026-03-05 09:00"))
    assert members(sessions, segment) == {}
    assert bring_up_to_date(sessions, at("2026-03-05 09:00")) == 2
    assert members(sessions, segment) == {ADA: at("2026-03-05 09:00")}
    assert history(sessions, ADA) == [("joined", at("2026-03-05 09:00"), "publish")]


def test_it_notices_attribute_and_consent_changes_made_outside_events(sessions):
    germans = load_segment(sessions, GERMANS, T0)
    readers = load_segment(sessions, NEWSLETTER, T0)
    subscribe(sessions, ADA, T0, topic="newsletter", country="DE")
    bring_up_to_date(sessions, at("2026-03-02 10:01"))
    assert members(sessions, germans) == {ADA: T0}
    assert members(sessions, readers) == {ADA: T0}

    moved = at("2026-03-04 08:00")
    with sessions.begin() as s:
        contact = contacts_svc.find(s, ADA)
        contacts_svc.update_attributes(contact, {"country": "FR"}, moved)
        contacts_svc.set_status(s, contact, "unsubscribed", moved, contacts_svc.Actor("test"))
    assert members(sessions, germans) == {ADA: T0}  # not yet: the tick does it
    bring_up_to_date(sessions, at("2026-03-04 08:00"))
    assert members(sessions, germans) == {} and members(sessions, readers) == {}
    assert history(sessions, ADA)[-2:] == [("left", moved, "update"), ("left", moved, "update")]


def test_it_finds_dormant_readers_without_counting_new_contacts(sessions):
    segment = load_segment(sessions, SEGMENTS / "dormant-readers.yaml", T0)
    event(sessions, ADA, "email_opened", T0)
    event(sessions, ADA, "email_clicked", at("2026-03-10 10:00"))
    event(sessions, BOB, "signed_up", T0)  # known as long, never read anything
    bring_up_to_date(sessions, at("2026-05-09 09:00"))
    assert members(sessions, segment) == {}
    bring_up_to_date(sessions, at("2026-05-09 10:00"))  # 60 days after the last click
    assert members(sessions, segment) == {ADA: at("2026-05-09 10:00")}
    event(sessions, ADA, "email_clicked", at("2026-05-12 10:00"))
    assert members(sessions, segment) == {}


def test_it_follows_contacts_moved_by_funnel_timeouts(sessions, settings):
    text = (
        "key: gone-quiet\nname: Gone quiet\n"
        "match: {in_stage: {funnel: b2b-nurture, stage: dormant}}\n"
    )
    publish(sessions, ROOT / "funnels" / "b2b-nurture.yaml", T0)
    segment = load_segment(sessions, text, T0)
    subscribe(sessions, ADA, T0)
    event(sessions, ADA, "ebook_downloaded", T0, ebook="seven-fundamentals")
    run(sessions, settings, at("2026-03-17 10:00"), transport=MemoryTransport())
    assert enrollment(sessions, ADA).stage_key == "dormant"
    assert members(sessions, segment) == {ADA: at("2026-03-16 10:00")}


def test_it_enrolls_on_a_segment_once_unless_the_funnel_allows_reentry(sessions, settings):
    funnel = (ROOT / "funnels" / "cart-recovery.yaml").read_text().replace("reentry: true", "")
    load_segment(sessions, SEGMENTS / "cart-abandoners.yaml", T0)
    publish(sessions, funnel, T0)
    subscribe(sessions, ADA, T0)
    event(sessions, ADA, "add_to_cart", T0)
    bring_up_to_date(sessions, at("2026-03-03 10:00"))
    first = enrollment(sessions, ADA)
    event(sessions, ADA, "purchase_completed", at("2026-03-03 11:00"))
    event(sessions, ADA, "add_to_cart", at("2026-03-04 10:00"))
    bring_up_to_date(sessions, at("2026-03-06 10:00"))
    assert [kind for kind, _, _ in history(sessions, ADA)] == ["joined", "left", "joined"]
    assert enrollment(sessions, ADA).id == first.id  # no second enrollment
