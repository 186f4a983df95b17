"""The audit trail of automation changes: rules, allowances, expiries, alert rules and webhook endpoints.

Each add, change and removal is recorded like a key change, naming the rule and the fields it
was set with (never a webhook's secret), against the key it is about when it is about one.
"""

from datetime import datetime
from decimal import Decimal

from django.utils import translation

from automation.models import AlertRule, Allowance, AutoTopUpRule, KeyExpiry, WebhookEndpoint
from ledger import audit
from ledger.models import AuditEvent, Outcome

KIND_NAMES = {
    AlertRule: "alert rule",
    AutoTopUpRule: "auto top-up",
    Allowance: "allowance",
    KeyExpiry: "end date",
    WebhookEndpoint: "webhook endpoint",
}
AUDITED_FIELDS = {
    AlertRule: ("name", "kind", "threshold", "email_to", "enabled"),
    AutoTopUpRule: ("name", "threshold", "amount", "max_times", "monthly_cap", "enabled"),
    Allowance: ("period", "target", "enabled"),
    KeyExpiry: ("expires_at", "remind_days", "notify_email", "status"),
    WebhookEndpoint: ("url", "description", "events", "enabled"),
}
ACTIONS = {
    "add": (AuditEvent.Action.AUTOMATION_ADD, AuditEvent.Action.WEBHOOK_ADD),
    "change": (AuditEvent.Action.AUTOMATION_EDIT, AuditEvent.Action.WEBHOOK_EDIT),
    "remove": (AuditEvent.Action.AUTOMATION_REMOVE, AuditEvent.Action.WEBHOOK_REMOVE),
}


def _shown(value):
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return value


def _value_of(instance, field):
    if instance._meta.get_field(field).choices:
        # Recorded in English whoever's page made the change: the trail shows it in each reader's language.
        with translation.override("en"):
            return str(getattr(instance, f"get_{field}_display")())
    return _shown(getattr(instance, field))


def audited_values(instance):
    """The instance's audited fields as the trail shows them (a choice by its label)."""
    return {field: _value_of(instance, field) for field in AUDITED_FIELDS[type(instance)]}


def _describe(instance):
    kind = KIND_NAMES[type(instance)]
    name = getattr(instance, "name", "") or getattr(instance, "url", "")
    return f"{kind} “{name}”" if name else kind


def _record(user, change, instance, changes):
    automation_action, webhook_action = ACTIONS[change]
    action = webhook_action if isinstance(instance, WebhookEndpoint) else automation_action
    return audit.record(
        user,
        action,
        Outcome.OK,
        sub_key_id=getattr(instance, "sub_key_id", ""),
        label=getattr(instance, "key_label", ""),
        key_id_short=getattr(instance, "key_id_short", ""),
        changes={"automation": (None, _describe(instance)), **changes},
    )


def record_added(user, instance):
    return _record(user, "add", instance, {field: (None, value) for field, value in audited_values(instance).items()})


def record_changed(user, before, instance):
    """``before``: audited_values(instance) read before the change. Records only the fields that changed."""
    after = audited_values(instance)
    changes = {field: (before.get(field, ""), value) for field, value in after.items() if before.get(field, "") != value}
    return _record(user, "change", instance, changes)


def record_removed(user, instance):
    return _record(user, "remove", instance, {field: (value, "") for field, value in audited_values(instance).items()})
