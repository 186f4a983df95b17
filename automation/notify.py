"""Email through Django's email framework: the console backend in the demo, SMTP in production."""

import datetime
import smtplib
from email.utils import formataddr, parseaddr

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import F, Q
from django.utils import timezone
from lib.stored_text import note, read_in_english
from django.utils.translation import gettext_noop
from huey.contrib.djhuey import db_task

from automation.models import Alert, DeliveryStatus
from branding.models import Branding
from work.runs import tracked

EMAIL_MAX_ATTEMPTS = 3
EMAIL_RETRY_BASE_SECONDS = 60
# A customer email that fails (SMTP down) is retried after 60 s, 120 s, 240 s.
CUSTOMER_EMAIL_RETRIES = 3
CUSTOMER_EMAIL_RETRY_DELAY = 60
CUSTOMER_EMAIL_RETRY_BACKOFF = 2
# A claimed ("sending") email whose worker has not settled it this long after is taken over:
# well past one SMTP conversation (EMAIL_TIMEOUT per step).
EMAIL_CLAIM_LEASE = datetime.timedelta(minutes=2)


def _claimable(now):
    """Emails to send: waiting ones, and those a worker claimed longer ago than the lease (it died sending)."""
    return Q(email_status__in=(DeliveryStatus.PENDING, DeliveryStatus.RETRYING)) | Q(
        email_status=DeliveryStatus.SENDING, email_claimed_at__lte=now - EMAIL_CLAIM_LEASE
    ) | Q(email_status=DeliveryStatus.SENDING, email_claimed_at__isnull=True)


@db_task()
def send_alert_email(alert_id):
    """The worker's task: send an alert's email, and schedule the next attempt if it failed."""
    with tracked("automation.send_alert_email") as run:
        delay = attempt_alert_email(alert_id)
        run.detail = (note(gettext_noop("alert %(id)s: retry in %(seconds)s s"), id=alert_id, seconds=delay) if delay
                      else note(gettext_noop("alert %(id)s"), id=alert_id))
    if delay:
        send_alert_email.schedule((alert_id,), delay=delay)


def attempt_alert_email(alert_id):
    """Send an alert's email once; return seconds before a retry, or None when settled.

    The worker claims it ("sending") for EMAIL_CLAIM_LEASE: a worker killed mid-send
    leaves a claim that a later pass takes over once the lease is past.
    """
    now = timezone.now()
    claimed = Alert.objects.filter(_claimable(now), pk=alert_id).update(
        email_status=DeliveryStatus.SENDING, email_attempts=F("email_attempts") + 1, email_claimed_at=now
    )
    if not claimed:
        return None
    alert = Alert.objects.get(pk=alert_id)
    recipients = [address.strip() for address in alert.email_to.split(",") if address.strip()]
    subject = f"[derouter] {alert.rule_name}"
    # The console's alert email is in English, as its subject and the rest of its body.
    body = f"{read_in_english(alert.message)}\n\nFired {alert.fired_at:%Y-%m-%d %H:%M} UTC (crossing {alert.crossing}).\n"
    try:
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
    except (smtplib.SMTPException, OSError) as error:
        alert.email_error = f"{error.__class__.__name__}: {error}"[:500]
        if alert.email_attempts >= EMAIL_MAX_ATTEMPTS:
            alert.email_status = DeliveryStatus.FAILED
            alert.save(update_fields=["email_status", "email_error"])
            return None
        alert.email_status = DeliveryStatus.RETRYING
        alert.save(update_fields=["email_status", "email_error"])
        return EMAIL_RETRY_BASE_SECONDS * 2 ** (alert.email_attempts - 1)
    alert.email_status = DeliveryStatus.DELIVERED
    alert.email_error = ""
    alert.emailed_at = now
    alert.save(update_fields=["email_status", "email_error", "emailed_at"])
    return None


def customer_sender(brand):
    """DEFAULT_FROM_EMAIL's address under the reseller's product name: customers hear from their provider, not from us."""
    _, address = parseaddr(settings.DEFAULT_FROM_EMAIL)
    return formataddr((brand, address or settings.DEFAULT_FROM_EMAIL))


@db_task(retries=CUSTOMER_EMAIL_RETRIES, retry_delay=CUSTOMER_EMAIL_RETRY_DELAY, retry_backoff=CUSTOMER_EMAIL_RETRY_BACKOFF)
def send_customer_email(subject, body, recipient):
    """The worker's task: one message to a customer (budget request decisions, expiry reminders)."""
    with tracked("automation.send_customer_email") as run:
        brand = Branding.load().display_name
        send_mail(f"[{brand}] {subject}", body, customer_sender(brand), [recipient])
        run.detail = subject[:200]


def overdue_alert_ids(now=None):
    """Alerts whose email retry was lost with a restarted worker, or whose sender died past its claim's lease."""
    now = now or timezone.now()
    stale = now - datetime.timedelta(minutes=10)
    lost = Q(email_status__in=(DeliveryStatus.PENDING, DeliveryStatus.RETRYING), fired_at__lte=stale)
    abandoned = Q(email_status=DeliveryStatus.SENDING) & _claimable(now)
    return list(Alert.objects.filter(lost | abandoned).values_list("pk", flat=True)[:100])
