"""Regressions for the bugs a QA walk through the demo found (one test or more per bug)."""

import logging
import re
from decimal import Decimal

import pytest
from django.test import Client
from playwright.sync_api import expect

from dashboard import audit
from dashboard.models import AuditEvent, Outcome
from lib.money import exact_usd, multiplier
from derouter import client as derouter_client
from tests.conftest import sign_in

AUDIT_URL = "/dashboard/audit/"


def _keys_labelled(label):
    return [key for key in derouter_client.list_sub_keys() if key.label == label]


# Bug: reloading the "Key created" page (a POST answer) sent the form again and
# made a second key, taking its budget out of the balance a second time.
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_reloading_the_created_page_does_not_create_a_second_key(live_server, page, owner):
    sign_in(page, live_server, "olivia", "owner-pass-1234")
    page.goto(f"{live_server.url}/dashboard/keys/new/")
    page.fill("#id_label", "QA reload once")
    page.fill("#id_budget", "3")
    page.click("main button:has-text('Create key')")
    expect(page.locator("h1")).to_contain_text("Key created")
    created = _keys_labelled("QA reload once")
    assert len(created) == 1
    try:
        page.reload()
        expect(page.locator("h1")).to_contain_text("QA reload once")
        assert page.locator("#full-key").count() == 0
        assert len(_keys_labelled("QA reload once")) == 1
    finally:
        for key in _keys_labelled("QA reload once"):
            derouter_client.delete_sub_key(key.id)


# Bug: reloading the full-key page revealed the key again, with another audit event.
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_reloading_the_reveal_page_does_not_reveal_again(live_server, page, owner, make_key):
    created = make_key(label="QA reveal once")
    try:
        sign_in(page, live_server, "olivia", "owner-pass-1234")
        page.goto(f"{live_server.url}/dashboard/keys/{created.id}/")
        page.get_by_role("button", name=re.compile("Reveal")).click()
        expect(page.locator("#full-key")).to_have_text(created.secret.reveal())
        page.reload()
        expect(page.locator("h1")).to_contain_text("QA reveal once")
        reveals = AuditEvent.objects.filter(action=AuditEvent.Action.REVEAL, sub_key_id=str(created.id))
        assert reveals.count() == 1
    finally:
        derouter_client.delete_sub_key(created.id)


# Bug: every page load asked for /favicon.ico, a 404 in the browser console.
@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_pages_load_without_console_errors(live_server, page):
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    for path in ("/", "/login/", "/portal/login/"):
        page.goto(f"{live_server.url}{path}")
        page.wait_for_load_state("networkidle")
    assert errors == []


def test_base_template_declares_an_icon(client):
    body = client.get("/login/").content.decode()
    assert 'rel="icon" href="data:image/svg+xml,' in body


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


# Bug: every refused staff action wrote two full Python tracebacks into the log.
@pytest.mark.django_db
def test_a_refused_staff_action_logs_no_traceback(staff_client, make_key, caplog):
    created = make_key(label="QA staff refused")
    try:
        with caplog.at_level(logging.WARNING, logger="django.request"):
            for path in ("/dashboard/keys/new/", f"/dashboard/keys/{created.id}/reveal/", f"/dashboard/keys/{created.id}/delete/"):
                response = staff_client.post(path, {})
                assert response.status_code == 403
                assert "Only an owner can do this." in response.content.decode()
        assert all(record.exc_info is None for record in caplog.records)
        assert [key.id for key in _keys_labelled("QA staff refused")] == [created.id]
    finally:
        derouter_client.delete_sub_key(created.id)


# Bug: the portal offered "localtime" (the server's own zone) and "Factory" as time zones.
@pytest.mark.django_db
def test_portal_refuses_server_local_time_zone(make_key):
    created = make_key(label="QA time zone")
    try:
        portal = Client()
        assert portal.post("/portal/login/", {"client_key": created.secret.reveal()}).status_code == 302
        body = portal.get("/portal/logs/").content.decode()
        assert 'value="localtime"' not in body and 'value="Factory"' not in body
        assert portal.post("/portal/timezone/", {"tz": "localtime"}).status_code == 400
        assert portal.post("/portal/timezone/", {"tz": "Europe/Berlin"}).status_code == 302
    finally:
        derouter_client.delete_sub_key(created.id)


# Bug: the "Key created" notice ended "sk-ant-abc....", the short key's dots plus a full stop.
@pytest.mark.django_db
def test_created_notice_does_not_run_dots_together(owner_client):
    response = owner_client.post("/dashboard/keys/new/", {"label": "QA wording", "budget": "1", "rpm_limit": "60"})
    try:
        body = response.content.decode()
        assert response.status_code == 200
        assert "...</span>." not in body
        assert "shows only its short form" in body
    finally:
        for key in _keys_labelled("QA wording"):
            derouter_client.delete_sub_key(key.id)


# Bug: multipliers read "×1.5000" (floatformat:"-4"); costs lost digits past the fourth.
@pytest.mark.parametrize(
    ("value", "shown"),
    [(Decimal("1.5000"), "1.5"), (Decimal("4"), "4"), ("2.50", "2.5"), (Decimal("10"), "10"), (None, ""), ("x", "")],
)
def test_multiplier_filter(value, shown):
    assert multiplier(value) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (Decimal("0.202901"), "$0.202901"),
        (Decimal("0.0023"), "$0.0023"),
        (0.0023, "$0.0023"),
        ("2.3E-7", "$0.00000023"),
        (Decimal("1234.5"), "$1,234.50"),
        (None, ""),
        ("NaN", ""),
    ],
)
def test_exact_usd_filter(value, shown):
    assert exact_usd(value) == shown
