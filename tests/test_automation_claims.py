"""No claim outlives its lease: an alert email or a webhook delivery left "sending" by a killed worker is taken over by a later pass."""

import datetime
import json

import pytest
from django.core import mail
from django.utils import timezone

from automation import evaluation, notify, webhooks
from automation.models import Alert, DeliveryStatus, WebhookDelivery

pytestmark = pytest.mark.django_db


def alert(**fields):
    return Alert.objects.create(
        rule_name="Balance low", crossing=1, event_type="account.low", message="The account's available balance is $5.00.",
        email_to="ops@example.com", **fields,
    )


def run_pass(capture):
    with capture(execute=True):
        evaluation.evaluate()


def test_an_alert_email_left_sending_past_its_lease_is_sent_by_a_later_pass(simulator, django_capture_on_commit_callbacks):
    killed_at = timezone.now() - notify.EMAIL_CLAIM_LEASE - datetime.timedelta(seconds=1)
    stuck = alert(email_status=DeliveryStatus.SENDING, email_attempts=1, email_claimed_at=killed_at, fired_at=killed_at)

    run_pass(django_capture_on_commit_callbacks)

    stuck.refresh_from_db()
    assert stuck.email_status == DeliveryStatus.DELIVERED and stuck.email_attempts == 2
    (email,) = mail.outbox
    assert email.to == ["ops@example.com"]


def test_an_alert_email_claimed_within_its_lease_is_left_to_its_worker(simulator, django_capture_on_commit_callbacks):
    sending = alert(email_status=DeliveryStatus.SENDING, email_attempts=1, email_claimed_at=timezone.now())
    assert notify.attempt_alert_email(sending.pk) is None
    run_pass(django_capture_on_commit_callbacks)
    sending.refresh_from_db()
    assert sending.email_status == DeliveryStatus.SENDING and mail.outbox == []


def test_a_webhook_delivery_left_sending_past_its_lease_is_delivered_by_a_later_pass(
    simulator, webhook_receiver, django_capture_on_commit_callbacks
):
    endpoint, _ = webhooks.create_endpoint(webhook_receiver.url, ["key.low"])
    killed_at = timezone.now() - webhooks.CLAIM_LEASE - datetime.timedelta(seconds=1)
    stuck = WebhookDelivery.objects.create(
        endpoint=endpoint, event_id=webhooks.event_id_for("stuck"), event_type="key.low",
        body=json.dumps({"type": "key.low"}), status=DeliveryStatus.SENDING, attempts=1,
        created_at=killed_at, next_attempt_at=killed_at, last_attempt_at=killed_at,
    )

    run_pass(django_capture_on_commit_callbacks)

    stuck.refresh_from_db()
    assert (stuck.status, stuck.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert len(webhook_receiver.of_type("key.low")) == 1


def test_a_webhook_delivery_claimed_within_its_lease_is_not_sent_twice(simulator, webhook_receiver):
    endpoint, _ = webhooks.create_endpoint(webhook_receiver.url, ["key.low"])
    now = timezone.now()
    sending = WebhookDelivery.objects.create(
        endpoint=endpoint, event_id=webhooks.event_id_for("in-flight"), event_type="key.low",
        body="{}", status=DeliveryStatus.SENDING, attempts=1, next_attempt_at=now, last_attempt_at=now,
    )
    assert webhooks.attempt_delivery(sending.pk) is None
    assert sending.pk not in webhooks.get_overdue_ids()
    assert webhook_receiver.of_type("key.low") == []
