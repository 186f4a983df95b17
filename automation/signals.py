"""Console writes become webhook events through the audit trail every write already records."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from automation import webhooks
from dashboard.models import AuditEvent, Outcome

EVENT_OF_ACTION = {
    AuditEvent.Action.CREATE: "key.created",
    AuditEvent.Action.EDIT: "key.edited",
    AuditEvent.Action.TOPUP: "key.topped_up",
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
        "message": event.message,
        "audit_event_id": event.pk,
    }


@receiver(post_save, sender=AuditEvent, dispatch_uid="automation-audit-webhooks")
def emit_for_audit_event(sender, instance, **kwargs):
    """A settled write (OK or unknown) of a key is an event; pending and refused ones are not."""
    event_type = EVENT_OF_ACTION.get(instance.action)
    if event_type is None:
        return
    if instance.outcome == Outcome.OK:
        webhooks.emit(event_type, event_data(instance), f"audit:{instance.pk}:ok")
    elif instance.outcome == Outcome.UNKNOWN:
        webhooks.emit("write.unknown", event_data(instance), f"audit:{instance.pk}:unknown")
