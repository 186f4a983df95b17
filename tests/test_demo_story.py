"""The demo tells its story through the real services, signs what its receiver checks, and keeps its passwords."""

import json
import stat
import time
import uuid

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

from accounts.models import ConsoleProfile, Role
from automation import webhooks
from automation.management.commands.demo_story import RECEIVER_DESCRIPTION
from automation.management.commands.demo_webhook_receiver import is_signed_by
from automation.models import Alert, BudgetRequest, DeliveryStatus, RuleState, WebhookDelivery, WebhookEndpoint
from dashboard.management.commands import demo
from ledger.models import AuditEvent, Outcome, TopUp

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_owner():
    user = User.objects.create_user("owner", password="unused-pass-1234")
    ConsoleProfile.objects.create(user=user, role=Role.OWNER)
    return user


def _tell(receiver_url, capture):
    with capture(execute=True):
        return call_command("demo_story", receiver_url=receiver_url)


def test_the_story_moves_money_fires_an_alert_and_leaves_a_request_waiting(
    demo_owner, make_key, webhook_receiver, django_capture_on_commit_callbacks
):
    make_key("5", label="Demo story A")
    make_key("5", label="Demo story B")

    secret = _tell(webhook_receiver.url, django_capture_on_commit_callbacks)

    topups = TopUp.objects.all()
    assert topups.count() == 2 and {row.outcome for row in topups} == {Outcome.OK}
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TOPUP).count() == 2
    assert AuditEvent.objects.filter(action=AuditEvent.Action.WEBHOOK_ADD).exists()
    alert = Alert.objects.get()
    assert alert.rule.state == RuleState.FIRED
    assert BudgetRequest.objects.get().status == BudgetRequest.Status.PENDING
    deliveries = WebhookDelivery.objects.all()
    assert {row.event_type for row in deliveries} >= {"key.topped_up", "key.low", "budget.requested"}
    assert {row.status for row in deliveries} == {DeliveryStatus.DELIVERED}
    for received in webhook_receiver.requests:
        assert is_signed_by(secret, received.headers[webhooks.SIGNATURE_HEADER], received.body)


def test_a_second_run_moves_the_endpoint_to_the_new_receiver_and_tells_nothing_again(
    demo_owner, make_key, webhook_receiver, django_capture_on_commit_callbacks
):
    make_key("5", label="Demo story again")
    first_secret = _tell("http://127.0.0.1:9/old", django_capture_on_commit_callbacks)
    told = (TopUp.objects.count(), Alert.objects.count(), BudgetRequest.objects.count())

    second_secret = _tell(webhook_receiver.url, django_capture_on_commit_callbacks)

    assert second_secret == first_secret
    assert WebhookEndpoint.objects.get(description=RECEIVER_DESCRIPTION).url == webhook_receiver.url
    assert told[0] >= 1 and told[1:] == (1, 1)
    assert (TopUp.objects.count(), Alert.objects.count(), BudgetRequest.objects.count()) == told


def test_the_receiver_accepts_only_a_fresh_signature_made_with_its_secret():
    body = b'{"type": "key.low"}'
    now = int(time.time())

    assert is_signed_by("whsec_a", webhooks.signature_header("whsec_a", body, now), body)
    assert not is_signed_by("whsec_a", webhooks.signature_header("whsec_b", body, now), body)
    assert not is_signed_by("whsec_a", webhooks.signature_header("whsec_a", body, now), body + b" ")
    assert not is_signed_by("whsec_a", webhooks.signature_header("whsec_a", body, now - 3600), body)
    assert not is_signed_by("whsec_a", "garbage", body)


def test_the_passwords_are_kept_between_runs_in_a_file_only_the_user_reads(tmp_path):
    path = tmp_path / "var" / "demo-credentials.json"
    command = demo.Command()
    first = command._ensure_user("owner", Role.OWNER)
    demo._write_credentials(path, {"owner": first}, ["Console: http://127.0.0.1:8000/login/"])

    kept = demo._read_credentials(path)["passwords"]["owner"]
    second = command._ensure_user("owner", Role.OWNER, kept)

    assert second == first
    assert User.objects.get(username="owner").check_password(first)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text())["welcome"] == ["Console: http://127.0.0.1:8000/login/"]


def test_a_missing_or_broken_credentials_file_means_new_passwords(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")

    assert demo._read_credentials(tmp_path / "missing.json") == {}
    assert demo._read_credentials(broken) == {}


@pytest.mark.django_db(transaction=True)
def test_fresh_demo_data_leaves_nothing_of_the_old_state_in_the_database(demo_owner, settings):
    # The story's top-ups of an earlier simulator state, and its alert rules: a new state knows none of them.
    TopUp.objects.create(actor_name="owner", sub_key_id="old-key", amount=1, outcome=Outcome.OK, token=uuid.uuid4())
    AuditEvent.objects.create(actor_name="owner", action=AuditEvent.Action.CREATE, outcome=Outcome.OK, sub_key_id="old-key")
    settings.DEBUG = True
    demo.Command()._forget_old_data()
    assert not TopUp.objects.exists() and not AuditEvent.objects.exists() and not User.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_fresh_demo_data_is_refused_under_production_settings(demo_owner, settings):
    settings.DEBUG = False
    with pytest.raises(demo.CommandError):
        demo.Command()._forget_old_data()
    assert User.objects.filter(pk=demo_owner.pk).exists()
