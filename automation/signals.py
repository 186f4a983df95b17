"""Console writes become webhook events through the audit trail; an expired key explains itself in the portal."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from accounts.portal_sessions import portal_key_refused
from automation import expiry, webhooks
from ledger import audit
from ledger.models import AuditEvent, Outcome
from lib.stored_text import read_in_english

EVENT_OF_ACTION = {
    AuditEvent.Action.CREATE: "key.created",
    AuditEvent.Action.EDIT: "key.edited",
    AuditEvent.Action.TOPUP: "key.topped_up",
    AuditEvent.Action.RECLAIM: "key.reclaimed",
    AuditEvent.Action.DELETE: "key.deleted",
}


def event_data(event):
    return {
        "sub_key_id": event.sub_key_id,
        "label": event.key_label,
        "key_id": event.key_id_short,
        "actor": event.actor_name,
        "action": event.action,
        "outcome": event.outcome,
        "changes": event.changes,
        # Programs read the payload: a message stored as a note goes out in English.
        "message": read_in_english(event.message),
        "not_applied": event.not_applied,
        "audit_event_id": event.pk,
    }


@receiver(post_save, sender=AuditEvent, dispatch_uid="automation-audit-webhooks")
def emit_for_audit_event(sender, instance, **kwargs):
    """A settled write (OK or unknown) of a key is an event; pending and refused ones are not.

    A write derouter answered but did not keep in full (read back) is also ``write.mismatch``.
    Each event is keyed by the write's own record, however often and however it is settled; a
    late-write note is not a write (the write's own event, re-settled as applied, sent its event).
    """
    event_type = EVENT_OF_ACTION.get(instance.action)
    if event_type is None or audit.is_late_write_note(instance):
        return
    if instance.not_applied and instance.outcome != Outcome.PENDING:
        webhooks.emit("write.mismatch", event_data(instance), f"audit:{instance.pk}:mismatch")
    if instance.outcome == Outcome.OK:
        webhooks.emit(event_type, event_data(instance), f"audit:{instance.pk}:ok")
    elif instance.outcome == Outcome.UNKNOWN:
        webhooks.emit("write.unknown", event_data(instance), f"audit:{instance.pk}:unknown")


@receiver(portal_key_refused, dispatch_uid="automation-expired-key-notice")
def explain_expired_key(sender, client_key, **kwargs):
    """A signed-in key derouter refuses because we expired it says so, instead of just "no longer valid"."""
    return expiry.get_expired_notice(client_key)
