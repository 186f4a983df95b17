"""Keys with an end date: a reminder N days before, then the worker deletes the key.

Deleting (a ``dashboard.keywrites`` delete, as the worker) returns the key's unspent budget to
the account's available balance. A delete whose answer never came is not sent again blindly:
the next pass looks for the key in derouter's list first, and only a key still listed is deleted.
"""

import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_noop

from branding.language import language_for_key
from automation import actors, notify, webhooks
from automation.models import KeyExpiry
from dashboard import keywrites
from dashboard.upstream import get_sub_key_now
from lib.money import usd
from lib import stored_text
from lib.queue import enqueue_or_warn
from mirror import snapshot as mirror_snapshot
from mirror.key_store import secret_digest
from work import leases

# Expiries still to be done. DELETING is what earlier versions left while a worker held an
# expiry (a claim with no lease, stuck for good if that worker died): open again now, under a lease.
OPEN_STATUSES = (KeyExpiry.Status.SCHEDULED, KeyExpiry.Status.UNKNOWN, KeyExpiry.Status.DELETING)


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
        # In the language the customer reads its portal in.
        with translation.override(language_for_key(expiry.sub_key_id)):
            subject = gettext("Your key %(name)s expires on %(when)s") % {"name": name, "when": when}
            body = gettext(
                "Your key %(key_id)s (%(name)s) expires on %(when)s. "
                "Its unspent budget goes back to your provider then; ask them for a new key if you need one."
            ) % {"key_id": expiry.key_id_short, "name": name, "when": when}
        recipient = expiry.notify_email
        transaction.on_commit(lambda: enqueue_or_warn(notify.send_customer_email, subject, body, recipient))
    return stored_text.note(gettext_noop("Reminder sent for %(when)s."), when=when)


def _lease_name(expiry):
    return f"automation-expiry-{expiry.pk}"


def _expire(expiry, now):
    """Delete an expired key, under the expiry's lease: a worker killed mid-way holds it only until the lease runs out.

    The lease is the claim. Whatever stops the work (derouter refusing our access or asking us
    to slow down, a killed worker) leaves the expiry open, and the next pass takes it over once
    the lease is free; derouter's list is read first, so a delete that happened is not sent again.
    """
    try:
        with leases.held(_lease_name(expiry)):
            still_open = KeyExpiry.objects.filter(pk=expiry.pk, status__in=OPEN_STATUSES).exists()
            return _expire_held(expiry, now) if still_open else ""
    except leases.LeaseHeld:
        return ""


def _expire_held(expiry, now):
    sub_key = get_sub_key_now(expiry.sub_key_id)
    if sub_key is None:
        mirror_snapshot.record_deleted_key(expiry.sub_key_id)
        _finish(expiry, KeyExpiry.Status.EXPIRED, now, message=stored_text.note(gettext_noop("The key was already gone at derouter.")))
        return stored_text.note(gettext_noop("Already gone."))
    if sub_key.secret and not expiry.secret_sha256:
        expiry.secret_sha256 = secret_digest(sub_key.secret.reveal())
        KeyExpiry.objects.filter(pk=expiry.pk).update(secret_sha256=expiry.secret_sha256)
    why = stored_text.note(gettext_noop("Expired on %(when)s UTC."), when=f"{expiry.expires_at:%Y-%m-%d %H:%M}")
    write = keywrites.delete_key(actors.WorkerActor(actors.KEY_EXPIRY), sub_key, note=why)
    if write.is_ok:
        _finish(expiry, KeyExpiry.Status.EXPIRED, now, returned=write.returned,
                message=stored_text.note(gettext_noop("%(amount)s went back to the available balance."), amount=usd(write.returned)))
        return stored_text.note(gettext_noop("Deleted; %(amount)s returned."), amount=usd(write.returned))
    failure = write.failure
    if failure.is_gone:
        _finish(expiry, KeyExpiry.Status.EXPIRED, now, message=stored_text.note(gettext_noop("The key was already gone at derouter.")))
        return stored_text.note(gettext_noop("Already gone."))
    if not failure.was_sent:
        # Nothing was sent: the next pass tries again.
        _finish(expiry, KeyExpiry.Status.SCHEDULED, now, message=failure.message)
        return failure.message
    if failure.is_refused:
        _finish(expiry, KeyExpiry.Status.SCHEDULED, now, message=stored_text.note(gettext_noop("derouter refused the delete: %(message)s"), message=failure.message))
    else:
        _finish(
            expiry, KeyExpiry.Status.UNKNOWN, now,
            message=stored_text.note(gettext_noop("The delete's outcome is unknown (%(message)s); the next pass checks derouter's list first."),
                                    message=failure.message),
        )
    return failure.message


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
    open_ones = KeyExpiry.objects.filter(status__in=OPEN_STATUSES)
    horizon = now + datetime.timedelta(days=366)
    return [
        expiry
        for expiry in open_ones.filter(Q(expires_at__lte=now) | Q(reminder_sent_at__isnull=True, expires_at__lte=horizon))
        if expiry.expires_at <= now or expiry.expires_at - datetime.timedelta(days=expiry.remind_days) <= now
    ]


def get_expired_notice(client_key):
    """For the portal, in the language of the page asking: "this key expired on ..." when a pasted or signed-in key was expired by us."""
    expiry = KeyExpiry.objects.filter(secret_sha256=secret_digest(client_key), status=KeyExpiry.Status.EXPIRED).first()
    if expiry is None:
        return None
    return gettext("This key expired on %(date)s and was closed. Ask your provider for a new key.") % {"date": f"{expiry.expired_at:%Y-%m-%d}"}
