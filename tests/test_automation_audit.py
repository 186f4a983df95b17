"""Automation changes leave an audit event: who added, changed or removed which rule, allowance, end date or webhook endpoint."""

import pytest

from automation.models import AlertRule, Allowance, AutoTopUpRule, KeyExpiry, WebhookEndpoint
from ledger.models import AuditEvent

pytestmark = pytest.mark.django_db

Action = AuditEvent.Action


def events(action):
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def test_adding_and_removing_an_alert_rule_and_an_auto_top_up_are_audited(owner_client, make_key):
    key = make_key(budget="5", label="Audited")
    owner_client.post(
        "/dashboard/automation/alerts/",
        {"name": "Balance low", "kind": AlertRule.Kind.ACCOUNT_AVAILABLE_UNDER, "threshold": "20", "email_to": "a@example.com"},
    )
    owner_client.post(
        "/dashboard/automation/auto-topups/",
        {"sub_key_id": key.id, "name": "Keep going", "threshold": "1", "amount": "5", "monthly_cap": "20"},
    )
    alert_added, topup_added = events(Action.AUTOMATION_ADD)
    assert alert_added.actor_name == "olivia" and alert_added.changes["automation"] == [None, "alert rule “Balance low”"]
    assert alert_added.changes["threshold"] == [None, "20"]
    assert (topup_added.sub_key_id, topup_added.key_label) == (key.id, "Audited")
    assert topup_added.changes["amount"] == [None, "5"] and topup_added.changes["monthly_cap"] == [None, "20"]

    rule = AutoTopUpRule.objects.get()
    assert owner_client.post(f"/dashboard/automation/auto-topups/{rule.pk}/delete/").status_code == 302
    (removed,) = events(Action.AUTOMATION_REMOVE)
    assert removed.changes["automation"] == [None, "auto top-up “Keep going”"] and removed.changes["amount"] == ["5", ""]
    assert removed.sub_key_id == key.id


def test_an_allowance_added_then_changed_is_audited_with_what_changed(owner_client, make_key):
    key = make_key(budget="5", label="Refilled")
    owner_client.post("/dashboard/automation/allowances/", {"sub_key_id": key.id, "period": Allowance.Period.MONTH, "target": "10"})
    owner_client.post("/dashboard/automation/allowances/", {"sub_key_id": key.id, "period": Allowance.Period.WEEK, "target": "10"})
    (added,) = events(Action.AUTOMATION_ADD)
    (changed,) = events(Action.AUTOMATION_EDIT)
    assert added.changes["target"] == [None, "10"]
    assert changed.changes == {"automation": [None, "allowance"], "period": ["Every month", "Every week (Monday)"]}
    assert changed.sub_key_id == key.id


def test_an_end_date_set_moved_and_cancelled_is_audited(owner_client, make_key):
    key = make_key(budget="5", label="Ending")
    owner_client.post("/dashboard/automation/expiries/", {"sub_key_id": key.id, "expires_at": "2030-01-31 18:00", "remind_days": 3})
    owner_client.post("/dashboard/automation/expiries/", {"sub_key_id": key.id, "expires_at": "2030-02-28 18:00", "remind_days": 3})
    expiry = KeyExpiry.objects.get()
    owner_client.post(f"/dashboard/automation/expiries/{expiry.pk}/cancel/")
    (added,) = events(Action.AUTOMATION_ADD)
    moved, cancelled = events(Action.AUTOMATION_EDIT)
    assert added.changes["expires_at"] == [None, "2030-01-31 18:00 UTC"]
    assert moved.changes["expires_at"] == ["2030-01-31 18:00 UTC", "2030-02-28 18:00 UTC"]
    assert cancelled.changes["status"] == ["Scheduled", "Cancelled"]
    assert {event.sub_key_id for event in (added, moved, cancelled)} == {key.id}


def test_a_webhook_endpoint_added_paused_and_removed_is_audited_without_its_secret(owner_client):
    response = owner_client.post(
        "/dashboard/automation/webhooks/", {"url": "https://hooks.invalid/x", "events": ["key.low"], "description": "ops"}
    )
    secret = WebhookEndpoint.objects.get().get_secret()
    assert secret.encode() in response.content
    endpoint = WebhookEndpoint.objects.get()
    owner_client.post(f"/dashboard/automation/webhooks/{endpoint.pk}/toggle/")
    owner_client.post(f"/dashboard/automation/webhooks/{endpoint.pk}/delete/")
    (added,) = events(Action.WEBHOOK_ADD)
    (paused,) = events(Action.WEBHOOK_EDIT)
    (removed,) = events(Action.WEBHOOK_REMOVE)
    assert added.changes["url"] == [None, "https://hooks.invalid/x"] and added.changes["events"] == [None, "key.low"]
    assert paused.changes["enabled"] == [True, False]
    assert removed.changes["url"] == ["https://hooks.invalid/x", ""]
    assert all(secret not in str(event.changes) for event in (added, paused, removed))


def test_the_audit_trail_lists_automation_changes(owner_client, make_key):
    key = make_key(budget="5", label="Listed")
    owner_client.post("/dashboard/automation/allowances/", {"sub_key_id": key.id, "period": Allowance.Period.MONTH, "target": "10"})
    page = owner_client.get("/dashboard/audit/", {"action": Action.AUTOMATION_ADD}).content.decode()
    assert "Add automation" in page and "allowance" in page and "Listed" in page
