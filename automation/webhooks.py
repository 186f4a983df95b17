"""Webhook events: recorded with the change that caused them, signed, sent by the worker.

An event becomes one WebhookDelivery row per subscribed endpoint, in the caller's
transaction, and the worker is asked to send it once that transaction commits: a page
never waits for a receiver. The event id is derived from what happened (uuid5 of a
dedupe key), and (endpoint, event id) is unique, so the same happening recorded twice
(two workers, a retried task) is delivered once.

Signature (documented in docs/webhooks.md): the header ``X-Derouter-Signature: t=<unix>,v1=<hex>``
where hex is HMAC-SHA256 with the endpoint's secret over ``"<t>.<body>"``.
"""

import datetime
import hashlib
import hmac
import http.client
import json
import secrets
import time
import uuid
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from lib.stored_text import note
from django.utils.translation import gettext_noop
from huey.contrib.djhuey import db_task

from automation import outbound
from automation.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from lib.queue import enqueue_or_warn
from work.runs import tracked

SIGNATURE_HEADER = "X-Derouter-Signature"
EVENT_HEADER = "X-Derouter-Event"
DELIVERY_HEADER = "X-Derouter-Delivery"
EVENT_NAMESPACE = uuid.UUID("5b0e6a52-4f0c-4b8e-9d55-6f1f0c0de9a1")
SECRET_PREFIX = "whsec_"
# A delivery whose scheduled attempt was lost (a restarted worker) is sent by a pass after this long.
STUCK_SENDING_AFTER = datetime.timedelta(minutes=10)
# A delivery claimed ("sending") by a worker that has not settled it this long after (it died
# mid-send) is taken over: far past one attempt (WEBHOOK_TIMEOUT).
CLAIM_LEASE = datetime.timedelta(minutes=2)


def new_secret():
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def create_endpoint(url, events, description="", created_by_name=""):
    """Register an endpoint with a new signing secret; return (endpoint, the secret to show once)."""
    secret = new_secret()
    endpoint = WebhookEndpoint(url=url, events=list(events), description=description, created_by_name=created_by_name)
    endpoint.set_secret(secret)
    endpoint.save()
    return endpoint, secret


def sign(secret, timestamp, body):
    """Hex HMAC-SHA256 of "<timestamp>.<body>" under the endpoint's secret."""
    message = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def signature_header(secret, body, timestamp):
    return f"t={timestamp},v1={sign(secret, timestamp, body)}"


def event_id_for(dedupe_key):
    return uuid.uuid5(EVENT_NAMESPACE, dedupe_key)


def _jsonable(value):
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (datetime.datetime, datetime.date)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def encode_event(event_id, event_type, data, created):
    """The body every endpoint receives for an event; money as decimal strings."""
    payload = {"id": str(event_id), "type": event_type, "created": created.isoformat(), "data": data}
    return json.dumps(payload, default=_jsonable, separators=(",", ":"), sort_keys=True)


def emit(event_type, data, dedupe_key, alert=None):
    """Record an event for every endpoint subscribed to it; send after the transaction commits.

    Returns the deliveries created now (none when the event was recorded before).
    """
    endpoints = [endpoint for endpoint in WebhookEndpoint.objects.filter(enabled=True) if event_type in endpoint.events]
    if not endpoints:
        return []
    event_id = event_id_for(dedupe_key)
    body = encode_event(event_id, event_type, data, timezone.now())
    created = []
    for endpoint in endpoints:
        try:
            with transaction.atomic():
                delivery = WebhookDelivery.objects.create(
                    endpoint=endpoint, event_id=event_id, event_type=event_type, body=body, alert=alert
                )
        except IntegrityError:
            continue
        created.append(delivery)
    for delivery in created:
        enqueue(delivery.pk)
    return created


def enqueue(delivery_id):
    """Ask the worker to send a delivery once the current transaction commits."""
    transaction.on_commit(lambda: enqueue_or_warn(deliver_webhook, delivery_id))


def _claimable(now):
    """Deliveries due now, and those claimed by a worker longer ago than CLAIM_LEASE (it died sending)."""
    due = Q(status__in=(DeliveryStatus.PENDING, DeliveryStatus.RETRYING), next_attempt_at__lte=now)
    abandoned = Q(status=DeliveryStatus.SENDING) & (Q(last_attempt_at__lte=now - CLAIM_LEASE) | Q(last_attempt_at__isnull=True))
    return due | abandoned


def _claim(delivery_id):
    """Mark a due delivery as being sent by this worker, for CLAIM_LEASE; None if another has it or it is done."""
    now = timezone.now()
    claimed = WebhookDelivery.objects.filter(_claimable(now), pk=delivery_id).update(
        status=DeliveryStatus.SENDING, attempts=F("attempts") + 1, last_attempt_at=now
    )
    if not claimed:
        return None
    return WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)


def retry_delay(attempts):
    """Seconds before the next attempt: exponential backoff from WEBHOOK_RETRY_BASE_SECONDS."""
    return settings.WEBHOOK_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0)


@db_task()
def deliver_webhook(delivery_id):
    """The worker's task: send one webhook delivery; on failure schedule the next attempt with exponential backoff."""
    with tracked("automation.deliver_webhook") as run:
        delay = attempt_delivery(delivery_id)
        run.detail = (note(gettext_noop("delivery %(id)s: retry in %(seconds)s s"), id=delivery_id, seconds=delay) if delay
                      else note(gettext_noop("delivery %(id)s"), id=delivery_id))
    if delay:
        deliver_webhook.schedule((delivery_id,), delay=delay)


def attempt_delivery(delivery_id):
    """Send one delivery once; return the delay in seconds before a retry, or None when settled."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return None
    endpoint = delivery.endpoint
    body = delivery.body.encode()
    secret = endpoint.get_secret()
    if secret is None:
        _settle(delivery, DeliveryStatus.FAILED, error=note(gettext_noop("The endpoint's secret cannot be read (SECRET_KEY changed): register it again.")))
        return None
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "derouter-dashboard-webhooks/1",
        EVENT_HEADER: delivery.event_type,
        DELIVERY_HEADER: str(delivery.event_id),
        SIGNATURE_HEADER: signature_header(secret, body, int(time.time())),
    }
    try:
        result = outbound.post(endpoint.url, body, headers, settings.WEBHOOK_TIMEOUT)
    except outbound.TargetRefused as refusal:
        # Retrying cannot make a refused address acceptable.
        _settle(delivery, DeliveryStatus.FAILED, error=note(gettext_noop("Refused: %(reason)s"), reason=str(refusal)))
        return None
    except (OSError, http.client.HTTPException) as error:
        return _fail(delivery, error=note(gettext_noop("Could not deliver: %(error)s"), error=f"{error.__class__.__name__}: {error}"))
    if 200 <= result.status < 300:
        _settle(delivery, DeliveryStatus.DELIVERED, response_code=result.status)
        return None
    return _fail(delivery, response_code=result.status, error=result.excerpt)


def _settle(delivery, status, response_code=None, error=""):
    delivery.status = status
    delivery.response_code = response_code
    delivery.last_error = error
    delivery.delivered_at = timezone.now() if status == DeliveryStatus.DELIVERED else None
    delivery.save(update_fields=["status", "response_code", "last_error", "delivered_at"])


def _fail(delivery, response_code=None, error=""):
    if delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
        _settle(delivery, DeliveryStatus.FAILED, response_code, error)
        return None
    delay = retry_delay(delivery.attempts)
    delivery.status = DeliveryStatus.RETRYING
    delivery.response_code = response_code
    delivery.last_error = error
    delivery.next_attempt_at = timezone.now() + datetime.timedelta(seconds=delay)
    delivery.save(update_fields=["status", "response_code", "last_error", "next_attempt_at"])
    return delay


def send_again(delivery):
    """Queue a settled delivery once more ("send again"); False if it is still under way."""
    updated = WebhookDelivery.objects.filter(
        pk=delivery.pk, status__in=(DeliveryStatus.DELIVERED, DeliveryStatus.FAILED)
    ).update(status=DeliveryStatus.PENDING, next_attempt_at=timezone.now())
    if updated:
        enqueue(delivery.pk)
    return bool(updated)


def get_overdue_ids(now=None):
    """Deliveries whose scheduled retry was lost (a restarted worker) or whose sender died past its claim's lease."""
    now = now or timezone.now()
    lost = Q(status__in=(DeliveryStatus.PENDING, DeliveryStatus.RETRYING), next_attempt_at__lte=now - STUCK_SENDING_AFTER)
    abandoned = Q(status=DeliveryStatus.SENDING) & _claimable(now)
    return list(WebhookDelivery.objects.filter(lost | abandoned).values_list("pk", flat=True)[:500])
