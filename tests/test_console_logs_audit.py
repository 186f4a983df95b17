"""Usage logs paged through the live simulator, and the audit trail."""

import re
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from dashboard import audit
from dashboard.models import AuditEvent, Outcome
from derouter import client as derouter

pytestmark = pytest.mark.django_db

LOGS_URL = reverse("console:usage_logs")
AUDIT_URL = reverse("console:audit_trail")


def inject_usage(simulator, sub_key_id, count):
    simulator.add_usage(sub_key_id, "0.0023", count, inputTokens=1500, outputTokens=800)


def request_ids(response):
    return set(re.findall(r"<code>(req_[^<]+)</code>", response.content.decode()))


def upstream_request_ids(**filters):
    return {log.request_id for log in derouter.get_usage_logs(1, 100, **filters).logs}


@pytest.mark.parametrize("limit", [20, 50, 100])
def test_the_logs_page_offers_each_page_size(owner_client, make_key, simulator, limit):
    key = make_key("5", label="Sizes")
    inject_usage(simulator, key.id, 1)

    response = owner_client.get(LOGS_URL, {"limit": limit})

    assert response.status_code == 200
    assert f"{limit} per page" in response.content.decode()
    assert "HX-Request" in response["Vary"]


@pytest.mark.parametrize(
    "query",
    [{"page": "abc"}, {"page": "0"}, {"page": "-3"}, {"limit": "7"}, {"limit": "abc"}, {"page": "1e9"},
     {"page": "99999999999999999999"}, {"limit": "1000"}],
)
def test_bad_paging_values_are_corrected(owner_client, query):
    response = owner_client.get(LOGS_URL, query)
    assert response.status_code == 200
    assert "were not understood" in response.content.decode()


def test_a_page_past_the_end_says_so(owner_client, make_key, simulator):
    key = make_key("5", label="Short")
    inject_usage(simulator, key.id, 3)

    response = owner_client.get(LOGS_URL, {"key": key.id, "page": 5})

    assert response.status_code == 200
    assert "past the end" in response.content.decode()
    assert "page=1" in response.content.decode()


def test_a_bad_or_unknown_key_filter_is_not_a_500(owner_client):
    assert owner_client.get(LOGS_URL, {"key": "<script>"}).status_code == 400
    assert owner_client.get(LOGS_URL, {"key": str(uuid.uuid4())}).status_code == 404


def test_the_key_filter_shows_only_that_keys_requests(owner_client, make_key, simulator):
    first = make_key("5", label="First customer")
    second = make_key("5", label="Second customer")
    simulator.chat(first.secret.reveal(), text="Hello there")
    simulator.chat(first.secret.reveal(), text="Hello there")
    simulator.chat(second.secret.reveal(), text="Hello there")

    response = owner_client.get(LOGS_URL, {"key": first.id})

    assert response.status_code == 200
    shown = request_ids(response)
    assert shown == upstream_request_ids(sub_key_id=first.id)
    assert len(shown) == 2
    assert not shown & upstream_request_ids(sub_key_id=second.id)
    page = response.content.decode()
    assert f'<option value="{first.id}" selected>First customer' in page
    assert "claude-sonnet-4-6" in page


def test_the_account_only_filter(owner_client, make_key, simulator):
    key = make_key("5", label="Customer")
    simulator.chat(key.secret.reveal(), text="Hello there")
    simulator.chat(simulator.account_key, text="Hello there")

    response = owner_client.get(LOGS_URL, {"key": "account", "limit": 100})

    shown = request_ids(response)
    assert shown
    assert shown <= upstream_request_ids(account_only=True)
    assert not shown & upstream_request_ids(sub_key_id=key.id)


def test_every_field_is_shown_in_real_money(owner_client, make_key, simulator):
    key = make_key("5", label="Fields")
    inject_usage(simulator, key.id, 1)

    page = owner_client.get(LOGS_URL, {"key": key.id}).content.decode()

    for text in ("1,500", "800", "$0.002300", "1 s", "Cache read", "Cache write", "req_"):
        assert text in page


def test_paging_through_a_keys_logs(owner_client, make_key, simulator):
    key = make_key("5", label="Busy")
    inject_usage(simulator, key.id, 25)

    first = owner_client.get(LOGS_URL, {"key": key.id, "limit": 20})
    second = owner_client.get(LOGS_URL, {"key": key.id, "limit": 20, "page": 2})

    assert "25 requests · page 1 of 2" in first.content.decode()
    assert 'rel="next"' in first.content.decode()
    assert len(request_ids(first)) == 20
    assert len(request_ids(second)) == 5
    assert not request_ids(first) & request_ids(second)


def test_an_htmx_request_gets_only_the_fragment(owner_client, make_key, simulator):
    key = make_key("5", label="Fragment")
    inject_usage(simulator, key.id, 2)

    response = owner_client.get(LOGS_URL, {"key": key.id}, headers={"HX-Request": "true"})

    page = response.content.decode()
    assert response.status_code == 200
    assert page.lstrip().startswith('<section id="logs"')
    assert "<html" not in page
    assert len(request_ids(response)) == 2


def test_staff_see_the_logs(staff_client):
    assert staff_client.get(LOGS_URL).status_code == 200


def test_an_upstream_outage_is_a_clear_503(owner_client, simulator):
    simulator.inject("error", path="/usage-logs", method="GET", status=500, times=0)
    response = owner_client.get(LOGS_URL)
    assert response.status_code == 503
    assert "derouter is not answering" in response.content.decode()


@pytest.fixture
def events(owner, staff):
    key_id = str(uuid.uuid4())
    return {
        "topup": audit.record(
            staff, AuditEvent.Action.TOPUP, Outcome.OK, sub_key_id=key_id, label="Acme",
            key_id_short="sk-ant-acm...", changes={"budget": ("10", "15")},
        ),
        "refused": audit.record(
            owner, AuditEvent.Action.EDIT, Outcome.REFUSED, sub_key_id=key_id, label="Acme",
            changes={"rpm_limit": (60, 90)}, message="rpmLimit must be between 1 and 60",
        ),
        "unknown": audit.record(
            owner, AuditEvent.Action.DELETE, Outcome.UNKNOWN, sub_key_id=str(uuid.uuid4()), label="Other",
            message="derouter did not answer in time.",
        ),
        "reveal": audit.record(owner, AuditEvent.Action.REVEAL, Outcome.OK, sub_key_id=key_id, label="Acme"),
    }


def test_the_audit_trail_lists_events_with_their_outcomes(owner_client, events):
    response = owner_client.get(AUDIT_URL)

    page = response.content.decode()
    assert response.status_code == 200
    assert "4 events" in page
    assert "budget:</span> $10.00 → $15.00" in page
    assert "rpm limit:</span> 60 → 90" in page
    assert "rpmLimit must be between 1 and 60" in page
    assert "May or may not have happened." in page
    for badge in ('class="badge ok"', 'class="badge refused"', 'class="badge unknown"'):
        assert badge in page
    assert "sam" in page and "olivia" in page


def test_the_audit_trail_filters(owner_client, events):
    by_action = owner_client.get(AUDIT_URL, {"action": "topup"}).content.decode()
    assert "1 event ·" in by_action and "Top up" in by_action

    by_outcome = owner_client.get(AUDIT_URL, {"outcome": "unknown"}).content.decode()
    assert "1 event ·" in by_outcome and "Delete key" in by_outcome

    by_key = owner_client.get(AUDIT_URL, {"sub_key_id": events["topup"].sub_key_id}).content.decode()
    assert "3 events" in by_key and "did not answer in time" not in by_key

    assert "No events match" in owner_client.get(AUDIT_URL, {"action": "create"}).content.decode()
    assert owner_client.get(AUDIT_URL, {"action": "launch"}).status_code == 400
    assert owner_client.get(AUDIT_URL, {"page": "zzz"}).status_code == 200


def test_the_audit_trail_swaps_its_fragment_for_htmx(owner_client, events):
    response = owner_client.get(AUDIT_URL, {"outcome": "refused"}, headers={"HX-Request": "true"})
    page = response.content.decode()
    assert page.lstrip().startswith('<section id="audit"')
    assert "1 event ·" in page
    assert "HX-Request" in response["Vary"]


def test_staff_see_the_audit_trail(staff_client, events):
    assert staff_client.get(AUDIT_URL).status_code == 200


def test_with_many_keys_the_key_filter_is_a_text_field_not_a_huge_select(owner_client, make_key, monkeypatch):
    from dashboard.views import logs as logs_views

    monkeypatch.setattr(logs_views, "KEY_SELECT_LIMIT", 0)
    key = make_key("1", label="Filtered by id")
    response = owner_client.get(reverse("console:usage_logs"), {"key": key.id})
    body = response.content.decode()
    assert response.status_code == 200
    assert f'value="{key.id}"' in body
    assert "<option" not in body.split('name="key"')[1].split(">")[0]
    assert "Requests of" in body and "Filtered by id" in body


# Bug: a create event read "label: → Acme", as if the label had changed from something.
def test_audit_shows_a_created_key_without_a_before_value(owner_client, owner):
    audit.record(
        owner,
        AuditEvent.Action.CREATE,
        Outcome.OK,
        sub_key_id="7c41f71c-3ae3-4cc2-8b09-d52df4efc5f3",
        label="Acme",
        key_id_short="sk-ant-abc...",
        changes={"label": ("", "Acme"), "budget": (None, Decimal("12.3456"))},
    )
    body = owner_client.get(AUDIT_URL).content.decode()
    assert '<span class="muted">label:</span> Acme' in body
    assert "→ Acme" not in body
    assert '<span class="muted">budget:</span> $12.3456' in body


def test_audit_shows_an_emptied_label_as_empty(owner_client, owner):
    audit.record(
        owner,
        AuditEvent.Action.EDIT,
        Outcome.OK,
        sub_key_id="7c41f71c-3ae3-4cc2-8b09-d52df4efc5f3",
        label="Acme",
        changes={"label": ("Acme", "")},
    )
    body = owner_client.get(AUDIT_URL).content.decode()
    assert "Acme → (empty)" in body


# Bug: events of a deleted key linked to its page, which is a 404.
def test_audit_does_not_link_a_deleted_key(owner_client, owner):
    sub_key_id = "0b7e4c1a-5d3f-4e0a-9a43-7f1f0d6c2b11"
    for action in (AuditEvent.Action.CREATE, AuditEvent.Action.DELETE):
        audit.record(owner, action, Outcome.OK, sub_key_id=sub_key_id, label="Gone Ltd", changes={})
    body = owner_client.get(AUDIT_URL).content.decode()
    assert f"/dashboard/keys/{sub_key_id}/" not in body
    assert "Gone Ltd" in body and "deleted" in body
