"""Webhooks: signed deliveries a README-only receiver verifies, retries, send again, refused targets."""

import ipaddress
import json
import re
from pathlib import Path

import pytest

from automation import outbound, webhooks
from automation.models import DeliveryStatus, WebhookDelivery
from lib.stored_text import read_in_english

README = Path(__file__).resolve().parent.parent / "docs" / "webhooks.md"

pytestmark = pytest.mark.django_db


def readme_verifier():
    """The receiver's verify function, taken from the documentation's Python recipe (docs/webhooks.md) and nothing else."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    recipe = next(block for block in blocks if "def verify_derouter_signature" in block)
    namespace = {}
    exec(recipe, namespace)  # noqa: S102 - the README's own example, as a receiver would paste it
    return namespace["verify_derouter_signature"]


def make_endpoint(url, events=("key.created",)):
    endpoint, _ = webhooks.create_endpoint(url, events)
    return endpoint


def test_a_receiver_written_from_the_readme_verifies_the_signature(webhook_receiver, django_capture_on_commit_callbacks):
    endpoint = make_endpoint(webhook_receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.emit("key.created", {"label": "Client A", "amount": "1.50"}, "test:readme")

    (received,) = webhook_receiver.requests
    verify = readme_verifier()
    assert verify(endpoint.get_secret(), received.headers["X-Derouter-Signature"], received.body)
    assert not verify("whsec_wrong", received.headers["X-Derouter-Signature"], received.body)
    assert not verify(endpoint.get_secret(), received.headers["X-Derouter-Signature"], received.body + b" ")
    body = json.loads(received.body)
    assert body["type"] == "key.created"
    assert body["data"] == {"label": "Client A", "amount": "1.50"}
    assert received.headers["X-Derouter-Delivery"] == body["id"]
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (DeliveryStatus.DELIVERED, 1, 200)


def test_the_readme_recipe_refuses_an_old_timestamp():
    secret = webhooks.new_secret()
    body = b'{"id":"x"}'
    old = 1_000_000_000
    assert not readme_verifier()(secret, webhooks.signature_header(secret, body, old), body)


def test_the_same_event_recorded_twice_is_delivered_once(webhook_receiver, django_capture_on_commit_callbacks):
    make_endpoint(webhook_receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.emit("key.created", {"n": 1}, "test:twice")
        webhooks.emit("key.created", {"n": 1}, "test:twice")
    assert len(webhook_receiver.requests) == 1
    assert WebhookDelivery.objects.count() == 1


def test_endpoints_receive_only_the_events_they_chose(webhook_receiver, django_capture_on_commit_callbacks):
    make_endpoint(webhook_receiver.url, events=["budget.requested"])
    with django_capture_on_commit_callbacks(execute=True):
        webhooks.emit("key.created", {}, "test:other")
    assert webhook_receiver.requests == []


def test_a_failed_attempt_is_retried_with_exponential_backoff(webhook_receiver, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_RETRY_BASE_SECONDS = 30
    make_endpoint(webhook_receiver.url)
    webhook_receiver.answer_with(500, 503)
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhooks.emit("key.created", {}, "test:retry")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (DeliveryStatus.RETRYING, 1, 500)
    assert webhooks.retry_delay(1) == 30 and webhooks.retry_delay(2) == 60 and webhooks.retry_delay(3) == 120

    # The worker runs the scheduled retry once it is due.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.created_at)
    assert webhooks.attempt_delivery(delivery.pk) == 60
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=delivery.created_at)
    assert webhooks.attempt_delivery(delivery.pk) is None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == (DeliveryStatus.DELIVERED, 3, 200)
    assert len(webhook_receiver.requests) == 3
    assert len({item.headers["X-Derouter-Delivery"] for item in webhook_receiver.requests}) == 1


def test_a_retry_that_is_not_due_yet_sends_nothing(webhook_receiver, django_capture_on_commit_callbacks):
    make_endpoint(webhook_receiver.url)
    webhook_receiver.answer_with(500)
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhooks.emit("key.created", {}, "test:not-due")
    assert webhooks.attempt_delivery(delivery.pk) is None
    assert len(webhook_receiver.requests) == 1


def test_delivery_gives_up_after_the_last_attempt(webhook_receiver, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    make_endpoint(webhook_receiver.url)
    webhook_receiver.answer_with(410)
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhooks.emit("key.created", {}, "test:give-up")
    delivery.refresh_from_db()
    assert (delivery.status, delivery.response_code) == (DeliveryStatus.FAILED, 410)


def test_send_again_delivers_a_settled_delivery_once_more(webhook_receiver, django_capture_on_commit_callbacks):
    make_endpoint(webhook_receiver.url)
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhooks.emit("key.created", {}, "test:again")
    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks.send_again(delivery)
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert len(webhook_receiver.requests) == 2


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://10.0.0.8/hook",
        "http://192.168.1.1/hook",
        "http://172.16.5.5/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:9/hook",
        "http://[::ffff:127.0.0.1]:9/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0:9/hook",
    ],
)
def test_loopback_private_and_link_local_targets_are_refused_at_send_time(url, settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    make_endpoint(url)
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhooks.emit("key.created", {}, f"test:refused:{url}")
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert read_in_english(delivery.last_error).startswith("Refused:")
    assert delivery.attempts == 1


def test_a_running_receiver_on_loopback_gets_nothing_without_the_switch(webhook_receiver, settings, django_capture_on_commit_callbacks):
    make_endpoint(webhook_receiver.url)
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhooks.emit("key.created", {}, "test:switch-off")
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert webhook_receiver.requests == []


def test_http_urls_are_refused_unless_allowed(settings):
    settings.WEBHOOK_ALLOW_HTTP = False
    with pytest.raises(outbound.TargetRefused):
        outbound.check_url_shape("http://hooks.example.com/x")
    outbound.check_url_shape("https://hooks.example.com/x")
    with pytest.raises(outbound.TargetRefused):
        outbound.check_url_shape("https://user:pass@hooks.example.com/x")


def test_console_writes_become_webhook_events(owner_client, webhook_receiver, django_capture_on_commit_callbacks, make_key):
    endpoint = make_endpoint(webhook_receiver.url, events=["key.edited"])
    created = make_key(budget="2", label="Hooked")
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            f"/dashboard/keys/{created.id}/edit/", {"label": "Hooked renamed", "rpm_limit": 60, "display_multiplier": "1"}
        )
    assert response.status_code == 302
    (received,) = webhook_receiver.of_type("key.edited")
    assert readme_verifier()(endpoint.get_secret(), received.headers["X-Derouter-Signature"], received.body)
    data = json.loads(received.body)["data"]
    assert data["sub_key_id"] == created.id
    assert data["changes"]["label"] == ["Hooked", "Hooked renamed"]


def test_a_top_up_with_an_unknown_outcome_is_a_write_unknown_event(owner_client, simulator, webhook_receiver, django_capture_on_commit_callbacks, make_key):
    make_endpoint(webhook_receiver.url, events=["write.unknown", "key.topped_up"])
    created = make_key(budget="2", label="Unknown write")
    simulator.inject("drop", path=f"/sub-keys/{created.id}", method="PUT", times=1)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(
            f"/dashboard/keys/{created.id}/topup/",
            {"amount": "1", "note": "INV-9", "confirm": "1", "token": "6f0e1c8e-0000-4000-8000-000000000009"},
        )
    (received,) = webhook_receiver.requests
    body = json.loads(received.body)
    assert body["type"] == "write.unknown"
    assert (body["data"]["action"], body["data"]["outcome"], body["data"]["sub_key_id"]) == ("topup", "unknown", created.id)


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::",  # 6to4 embedding 127.0.0.1
        "2002:a00:1::1",  # 6to4 embedding 10.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 embedding 169.254.169.254
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
        "2001::1",  # Teredo prefix
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.1.2.3",
        "::127.0.0.1",  # IPv4-compatible
        "::ffff:0:192.168.0.1",  # IPv4-translated
        "64:ff9b::127.0.0.1",  # NAT64, well-known prefix
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::10.0.0.1",  # NAT64, local-use prefix
    ],
)
def test_ipv6_forms_of_private_ipv4_addresses_are_not_public(address):
    assert not outbound.is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "2002:808:808::", "64:ff9b::808:808", "::ffff:8.8.8.8"])
def test_public_addresses_and_their_ipv6_forms_stay_public(address):
    assert outbound.is_public_address(ipaddress.ip_address(address))


def test_a_6to4_target_embedding_loopback_is_refused_at_send_time(settings, django_capture_on_commit_callbacks):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    make_endpoint("http://[2002:7f00:1::]:9/hook")
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhooks.emit("key.created", {}, "test:6to4")
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert read_in_english(delivery.last_error).startswith("Refused:")
