"""Write the audit trail, and describe its changes for people."""

from django.utils.translation import gettext_lazy as _
from dataclasses import dataclass
from decimal import Decimal

from ledger.models import AuditEvent
from lib.money import exact_usd

EMPTY_TEXT = _("(empty)")


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
        key_label=label[:200],
        key_id_short=key_id_short[:64],
        changes={name: [_jsonable(before), _jsonable(after)] for name, (before, after) in (changes or {}).items()},
        message=message[:2000],
        form_token=form_token,
        subject_name=subject_name[:254],
    )


def finish(event, outcome, *, sub_key_id="", key_id_short="", message="", not_applied=None):
    """Settle a pending event once the upstream has answered (or not).

    ``not_applied`` ({field: (asked, kept)}) names what derouter answered as done but did not
    keep, as read back after the write.
    """
    event.outcome = outcome
    event.sub_key_id = sub_key_id or event.sub_key_id
    event.key_id_short = key_id_short[:64] or event.key_id_short
    event.message = message[:2000]
    fields = ["outcome", "sub_key_id", "key_id_short", "message"]
    if not_applied:
        event.not_applied = {name: [_jsonable(asked), _jsonable(kept)] for name, (asked, kept) in not_applied.items()}
        fields.append("not_applied")
    event.save(update_fields=fields)


@dataclass(frozen=True)
class Change:
    """One changed field of an audit event, as "field: before → after"; ``kept`` is set when derouter did not keep it."""

    field: str
    before: object
    after: object
    not_applied: bool = False
    kept: object = None


def _get_shown_value(name, value):
    """Money fields (stored as strings) shown as dollars, everything else as stored."""
    if value is not None and ("budget" in name or name.endswith("cap")):
        return exact_usd(value) or value
    return value


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
                   not_applied=not_applied is not None, kept=_get_shown_value(name, kept))
        )
    return changes
