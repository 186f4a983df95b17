"""Write the audit trail, and describe its changes for people."""

from django.db import transaction
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from dataclasses import dataclass
from decimal import Decimal

from ledger.models import AuditEvent, Outcome, TopUp
from lib.money import exact_usd
from lib import stored_text
from lib.text import cut

EMPTY_TEXT = _("(empty)")

# The trail records fields by their code names and some values as the words of the code (choices,
# booleans, markers): a page shows them in its reader's language. Anything else (labels, names,
# amounts, addresses) is the record's own text, shown as written.
FIELD_LABELS = {
    "label": _("Label"), "budget": _("Budget"), "rpm_limit": _("Requests per minute"),
    "display_multiplier": _("Display multiplier"), "budget_returned": _("Budget returned"), "outcome": _("Outcome"),
    "role": _("Role"), "daily_topup_cap": _("Daily top-up cap"), "can_see_margins": _("May see margins"),
    "active": _("Active"), "require_two_factor": _("Two-factor sign-in required"), "email": _("Email address"),
    "codes": _("Codes"), "kind": _("Kind"), "worth": _("Worth"), "expires": _("Expires"), "codes revoked": _("Codes revoked"),
    "secret key": _("Secret key"), "webhook secret": _("Webhook signing secret"), "package": _("Package"),
    "order": _("Order"), "staff may manage codes": _("Staff may manage codes"), "automation": _("Automation"),
    "name": _("Name"), "threshold": _("Threshold"), "email_to": _("Email to"), "enabled": _("Enabled"),
    "amount": _("Amount"), "max_times": _("At most"), "monthly_cap": _("Monthly cap"), "period": _("Period"),
    "target": _("Target"), "expires_at": _("Ends at"), "remind_days": _("Remind days before"),
    "notify_email": _("Customer's email"), "status": _("Status"), "url": _("URL"), "description": _("Description"),
    "events": _("Events"), "publishable key": _("Publishable key"), "daily orders per key": _("Daily orders per key"),
    "product_name": _("Product name"), "accent_color": _("Accent colour"), "support_contact": _("Support contact"),
    "money_unit": _("Money unit"), "inference_base_url": _("Inference base URL"), "direct_base_url": _("Direct host base URL"),
    "portal_language": _("Portal language"), "legal_name": _("Business name on receipts"),
    "postal_address": _("Address on receipts"), "tax_id": _("Tax id on receipts"), "logo": _("Logo"),
}
VALUE_LABELS = {
    True: _("Yes"), False: _("No"), "owner": _("Owner"), "staff": _("Staff"), "ok": _("OK"), "refused": _("Refused"),
    "unknown": _("Unknown"), "pending": _("Pending"), "never": _("never"), "(saved)": _("(saved)"),
    "(replaced)": _("(replaced)"), "none": _("none"), "refunded": _("Refunded"), "credited": _("Credited"),
}
# Fields whose string values are code words (the rest may be anyone's text: a label "none" stays "none").
WORD_FIELDS = {"role", "outcome", "expires", "secret key", "webhook secret", "logo", "order"}
# Fields whose values were recorded as a choice's English label: the catalog has them.
LABELLED_FIELDS = {"kind", "status", "period", "order"}
# How the automation changes name what they are about (automation.audit_changes): "alert rule “Low”".
AUTOMATION_KINDS = {
    "alert rule": _("alert rule"), "auto top-up": _("auto top-up"), "allowance": _("allowance"),
    "end date": _("end date"), "webhook endpoint": _("webhook endpoint"),
}


def _jsonable(value):
    return str(value) if isinstance(value, Decimal) else value


def record(
    user,
    action,
    outcome,
    *,
    sub_key=None,
    sub_key_id="",
    label="",
    key_id_short="",
    changes=None,
    message="",
    form_token=None,
    actor_name=None,
    subject_name="",
    keys_before=(),
):
    """Record one attempted change; ``sub_key`` (a SubKey) fills in the key's identity.

    ``user`` may be None for a record written later on someone's behalf: ``actor_name`` names them.
    """
    if sub_key is not None:
        sub_key_id = sub_key_id or sub_key.id
        label = label or sub_key.label
        key_id_short = key_id_short or sub_key.key_id
    is_user = user is not None and user.is_authenticated
    return AuditEvent.objects.create(
        actor=user if is_user else None,
        # A worker acting under a name (automation) is not a signed-in user but still has one.
        actor_name=actor_name if actor_name is not None else (user.get_username() if user is not None else ""),
        action=action,
        outcome=outcome,
        sub_key_id=sub_key_id,
        key_label=cut(label, 200),
        key_id_short=key_id_short[:64],
        changes={name: [_jsonable(before), _jsonable(after)] for name, (before, after) in (changes or {}).items()},
        message=cut(message, 2000),
        form_token=form_token,
        subject_name=cut(subject_name, 254),
        keys_before=sorted(keys_before),
    )


# A late-write note (a write settled "not applied" that derouter applied after all) records this as its
# change: the earlier write's outcome. The note is not a write: the write's own event, re-settled as
# applied, stands for it (its webhook, its money); the note tells a reader what happened and when.
LATE_WRITE_CHANGES = {"outcome": (Outcome.REFUSED.value, Outcome.OK.value)}


def is_late_write_note(event):
    """Whether the event is a late-write note (recorded with ``LATE_WRITE_CHANGES``), not a write of its own."""
    return event.form_token is None and event.changes == {
        name: [before, after] for name, (before, after) in LATE_WRITE_CHANGES.items()
    }


def finish(event, outcome, *, sub_key_id="", key_id_short="", message="", not_applied=None, inferred=False):
    """Settle a pending event once the upstream has answered (or not).

    ``not_applied`` ({field: (asked, kept)}) names what derouter answered as done but did not
    keep, as read back after the write. ``inferred``: settled from derouter's state, not its answer.
    """
    event.outcome = outcome
    event.sub_key_id = sub_key_id or event.sub_key_id
    event.key_id_short = key_id_short[:64] or event.key_id_short
    event.message = cut(message, 2000)
    event.outcome_inferred = inferred
    fields = ["outcome", "sub_key_id", "key_id_short", "message", "outcome_inferred"]
    if not_applied:
        event.not_applied = {name: [_jsonable(asked), _jsonable(kept)] for name, (asked, kept) in not_applied.items()}
        fields.append("not_applied")
    # One transaction: two processes settling the same delete at once (its request, the settling task)
    # leave the event and its ledger line with the same writer's outcome, never one each.
    with transaction.atomic():
        event.save(update_fields=fields)
        if event.action == AuditEvent.Action.DELETE and event.form_token:
            # A delete's ledger line (its return to the balance, under the same token) has the delete's outcome,
            # however the delete is settled. Done is inferred (from derouter's key list) until the delete's own
            # answer is recorded on the line (dashboard.topups.set_returned).
            TopUp.objects.filter(token=event.form_token, kind=TopUp.Kind.RETURN).exclude(outcome=outcome).update(
                outcome=outcome, message=event.message, outcome_inferred=outcome == Outcome.OK
            )


@dataclass(frozen=True)
class Change:
    """One changed field of an audit event, as "field: before → after"; ``kept`` is set when derouter did not keep it."""

    field: str
    before: object
    after: object
    not_applied: bool = False
    kept: object = None
    # The field as the reader reads it (``field`` stays the record's name, which the margin filter matches).
    label: object = ""


def _get_shown_value(name, value):
    """Money fields (stored as strings) shown as dollars, code words in the reader's language, the rest as stored."""
    if value is not None and ("budget" in name or name.endswith("cap")):
        return exact_usd(value) or value
    if isinstance(value, bool) or (isinstance(value, str) and name in WORD_FIELDS and value in VALUE_LABELS):
        return VALUE_LABELS[value]
    if isinstance(value, str) and name in LABELLED_FIELDS:
        return gettext(stored_text.read(value))
    if isinstance(value, str) and name == "automation":
        for english, label in AUTOMATION_KINDS.items():
            if value == english or value.startswith(f"{english} “"):
                return f"{label}{value[len(english):]}"
    return stored_text.read(value) if isinstance(value, str) else value


def describe_changes(event):
    """The event's ``changes`` JSON as a list of Change, tolerating odd shapes.

    A new key has no "before" (its label was recorded as changing from ""):
    show only what it was created with. An emptied text reads "(empty)".
    """
    if not isinstance(event.changes, dict):
        return []
    changes = []
    for name, values in event.changes.items():
        before, after = values if isinstance(values, (list, tuple)) and len(values) == 2 else (None, values)
        if event.action == AuditEvent.Action.CREATE:
            before = None
        elif before == "":
            before = EMPTY_TEXT
        if after == "":
            after = EMPTY_TEXT
        not_applied = event.not_applied.get(name) if isinstance(event.not_applied, dict) else None
        kept = not_applied[1] if isinstance(not_applied, (list, tuple)) and len(not_applied) == 2 else None
        changes.append(
            Change(name.replace("_", " "), _get_shown_value(name, before), _get_shown_value(name, after),
                   not_applied=not_applied is not None, kept=_get_shown_value(name, kept),
                   label=FIELD_LABELS.get(name, name.replace("_", " ")))
        )
    return changes
