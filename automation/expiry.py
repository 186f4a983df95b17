"""Keys with an end date: a reminder N days before, then the worker deletes the key.

Deleting returns the key's unspent budget to the account's available balance. A delete
whose answer never came is not sent again blindly: the next pass looks for the key in
derouter's list first, and only a key still listed is deleted.
"""

import datetime
from contextlib import ExitStack
from decimal import Decimal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from automation import actors, notify, webhooks
from automation.models import KeyExpiry
from automation.upstream import get_live_key
from dashboard import topups
from derouter import client
from derouter.client import DerouterError, Unavailable
from ledger import audit
from ledger.models import AuditEvent, Outcome
from ledger.outcomes import outcome_of_write_error
from lib.money import usd
from lib.queue import enqueue_or_warn
from mirror import snapshot as mirror_snapshot
from mirror import sync as mirror_sync
from mirror.key_store import secret_digest


def _remind(expiry, now):
    """Send the reminder once (whichever worker claims it first)."""
    claimed = KeyExpiry.objects.filter(pk=expiry.pk, reminder_sent_at__isnull=True).update(reminder_sent_at=now)
    if not claimed:
        return ""
    when = f"{expiry.expires_at:%Y-%m-%d %H:%M} UTC"
    name = expiry.key_label or expiry.key_id_short
    data = {"sub_key_id": expiry.sub_key_id, "label": expiry.key_label, "key_id": expiry.key_id_short, "expires_at": expiry.expires_at}
    webhooks.emit("key.expiring", data, f"expiry-reminder:{expiry.pk}:{expiry.expires_at.isoformat()}")
    if expiry.notify_email:
        subject = f"Your key {name} expires on {when}"
        body = (
            f"Your derouter key {expiry.key_id_short} ({name}) expires on {when}. "
            "Its unspent budget goes back to your provider then; ask them for a new key if you need one."
        )
        recipient = expiry.notify_email
        transaction.on_commit(lambda: enqueue_or_warn(notify.send_customer_email, subject, body, recipient))
    return f"Reminder sent for {when}."


def _record(expiry, outcome, sub_key, returned, message):
    changes = {"budget_returned": (None, returned)} if outcome == Outcome.OK else None
    audit.record(
        actors.WorkerActor(actors.KEY_EXPIRY),
        AuditEvent.Action.DELETE,
        outcome,
        sub_key=sub_key,
        sub_key_id=expiry.sub_key_id,
        label=expiry.key_label,
        key_id_short=expiry.key_id_short,
        changes=changes,
        message=message,
    )


def _expire(expiry, now):
    claimed = KeyExpiry.objects.filter(
        pk=expiry.pk, status__in=(KeyExpiry.Status.SCHEDULED, KeyExpiry.Status.UNKNOWN)
    ).update(status=KeyExpiry.Status.DELETING)
    if not claimed:
        return ""
    try:
        sub_key = get_live_key(expiry.sub_key_id)
    except Unavailable:
        KeyExpiry.objects.filter(pk=expiry.pk).update(status=expiry.status)
        raise
    if sub_key is None:
        mirror_snapshot.record_deleted_key(expiry.sub_key_id)
        _finish(expiry, KeyExpiry.Status.EXPIRED, now, message="The key was already gone at derouter.")
        return "Already gone."
    if sub_key.secret and not expiry.secret_sha256:
        expiry.secret_sha256 = secret_digest(sub_key.secret.reveal())
        KeyExpiry.objects.filter(pk=expiry.pk).update(secret_sha256=expiry.secret_sha256)
    # derouter stops listing a deleted key's usage: mirror what is left while it still can (best effort).
    mirror_sync.mirror_usage_before_write(sub_key)
    with ExitStack() as stack:
        # The return is a money move: after every earlier move on the key is settled, and what it
        # returns is the remaining read under the key's lock.
        try:
            current = stack.enter_context(topups.key_lock_for_return(sub_key.id))
        except (topups.KeyBusy, topups.MovesUnsettled) as refusal:
            message = getattr(refusal, "message", "another money move on this key is under way")
            _finish(expiry, KeyExpiry.Status.SCHEDULED, now, message=f"Not deleted yet: {message}")
            return message
        except DerouterError:
            KeyExpiry.objects.filter(pk=expiry.pk).update(status=expiry.status)
            raise
        if current is None:
            mirror_snapshot.record_deleted_key(expiry.sub_key_id)
            _finish(expiry, KeyExpiry.Status.EXPIRED, now, message="The key was already gone at derouter.")
            return "Already gone."
        return _delete(expiry, current, max(current.remaining, Decimal(0)), now)


def _delete(expiry, sub_key, returned, now):
    """Send the delete once, with the key's money lock held; record how it ended."""
    try:
        client.delete_sub_key(sub_key.id)
    except DerouterError as error:
        failure = outcome_of_write_error(error)
        if failure.is_gone:
            mirror_snapshot.record_deleted_key(sub_key.id)
            _finish(expiry, KeyExpiry.Status.EXPIRED, now, message="The key was already gone at derouter.")
            return "Already gone."
        if not failure.was_sent:
            # Nothing was sent: the next pass tries again.
            _finish(expiry, KeyExpiry.Status.SCHEDULED, now, message=failure.message)
            raise
        _record(expiry, failure.outcome, sub_key, returned, f"Expired: {failure.message}")
        if failure.is_unknown:
            mirror_snapshot.record_write_answer(None)
        if failure.is_refused:
            _finish(expiry, KeyExpiry.Status.SCHEDULED, now, message=f"derouter refused the delete: {failure.message}")
        else:
            _finish(
                expiry, KeyExpiry.Status.UNKNOWN, now,
                message=f"The delete's outcome is unknown ({failure.message}); the next pass checks derouter's list first.",
            )
        if failure.needs_error_page:
            raise
        return failure.message
    _record(expiry, Outcome.OK, sub_key, returned, f"Expired on {expiry.expires_at:%Y-%m-%d %H:%M} UTC.")
    mirror_snapshot.record_deleted_key(sub_key.id)
    _finish(expiry, KeyExpiry.Status.EXPIRED, now, returned=returned, message=f"{usd(returned)} went back to the available balance.")
    return f"Deleted; {usd(returned)} returned."


def _finish(expiry, status, now, returned=None, message=""):
    fields = {"status": status, "message": message}
    if status == KeyExpiry.Status.EXPIRED:
        fields.update(expired_at=now, returned=returned)
    KeyExpiry.objects.filter(pk=expiry.pk).update(**fields)


def evaluate_expiry(expiry, now=None):
    """Remind, or expire, as the date says; return what happened (empty: nothing)."""
    now = now or timezone.now()
    if expiry.status in (KeyExpiry.Status.EXPIRED, KeyExpiry.Status.CANCELLED):
        return ""
    if expiry.expires_at <= now:
        return _expire(expiry, now)
    if expiry.reminder_sent_at is None and expiry.expires_at - datetime.timedelta(days=expiry.remind_days) <= now:
        return _remind(expiry, now)
    return ""


def due_expiries(now=None):
    """Expiries to look at now: past their date, or inside their reminder window."""
    now = now or timezone.now()
    open_ones = KeyExpiry.objects.filter(status__in=(KeyExpiry.Status.SCHEDULED, KeyExpiry.Status.UNKNOWN))
    horizon = now + datetime.timedelta(days=366)
    return [
        expiry
        for expiry in open_ones.filter(Q(expires_at__lte=now) | Q(reminder_sent_at__isnull=True, expires_at__lte=horizon))
        if expiry.expires_at <= now or expiry.expires_at - datetime.timedelta(days=expiry.remind_days) <= now
    ]


def get_expired_notice(client_key):
    """For the portal: "this key expired on ..." when a pasted or signed-in key was expired by us."""
    expiry = KeyExpiry.objects.filter(secret_sha256=secret_digest(client_key), status=KeyExpiry.Status.EXPIRED).first()
    if expiry is None:
        return None
    return f"This key expired on {expiry.expired_at:%Y-%m-%d} and was closed. Ask your provider for a new key."
