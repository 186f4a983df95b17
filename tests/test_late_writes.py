"""Late writes (settled "not applied", applied by derouter after all) counted once: one webhook, one starter key.

Each write here is made slow at the simulator past the client's timeout, settled "not applied"
before derouter got round to it, then re-settled as applied by the worker's late-write pass.
"""

import uuid
from decimal import Decimal

import pytest
from django.test import Client

from automation import actors, webhooks
from automation.models import WebhookDelivery
from dashboard import keywrites, topups
from derouter import client
from ledger.models import AuditEvent, Outcome, TopUp
from lib.stored_text import read_in_english
from payments import codes, late_starters
from payments.models import CodeBatch, RedemptionCode
from tests.helpers import budget_of, eventually

pytestmark = pytest.mark.django_db

START_URL = "/portal/start/"


def live(sub_key_id):
    return next((key for key in client.list_sub_keys() if key.id == sub_key_id), None)


def keys_labelled(label):
    return [key for key in client.list_sub_keys() if key.label == label]


def deliveries(event_type):
    return WebhookDelivery.objects.filter(event_type=event_type).count()


@pytest.fixture
def late_keys():
    """Keys the test's creates made, deleted after (the simulator's balance is shared by every test)."""
    yield
    for sub_key_id in set(AuditEvent.objects.filter(action=AuditEvent.Action.CREATE, outcome=Outcome.OK)
                          .exclude(sub_key_id="").values_list("sub_key_id", flat=True)):
        if live(sub_key_id) is not None:
            client.delete_sub_key(sub_key_id)


def settle_before_it_lands(settings):
    """The worker's pass settles the slow write before derouter applied it: "not applied"."""
    settings.WRITE_SETTLE_SECONDS = 0
    keywrites.resolve_unsettled_writes(late_writes=True)


# ---------------------------------------------------------------- one webhook per write


def test_a_late_create_sends_key_created_once(settings, simulator, late_keys):
    webhooks.create_endpoint("https://hooks.example.com/derouter", ["key.created"])
    label = f"Late hook {uuid.uuid4().hex[:8]}"
    settings.DEROUTER_READ_TIMEOUT = 0.5
    simulator.inject("slow", path="/sub-keys", method="POST", delay=2, times=1)
    write = keywrites.create_key(actors.WorkerActor("test"), token=uuid.uuid4(), label=label, budget=Decimal(3), rpm_limit=None)
    assert write.is_unknown
    settle_before_it_lands(settings)
    assert AuditEvent.objects.get(pk=write.event.pk).outcome == Outcome.REFUSED
    assert deliveries("key.created") == 0  # "not applied": no key was made, so none is announced

    eventually(lambda: keys_labelled(label))
    keywrites.resolve_unsettled_writes(late_writes=True)
    keywrites.resolve_unsettled_writes(late_writes=True)  # settled again: still the same write

    assert AuditEvent.objects.filter(action=AuditEvent.Action.CREATE, outcome=Outcome.OK).count() == 2  # the write and its note
    (delivery,) = WebhookDelivery.objects.filter(event_type="key.created")
    assert f'"audit_event_id":{write.event.pk}' in delivery.body


def test_a_late_top_up_sends_key_topped_up_once(settings, simulator, make_key, late_keys):
    webhooks.create_endpoint("https://hooks.example.com/derouter", ["key.topped_up"])
    created = make_key("10", label="Late top-up hook")
    settings.DEROUTER_READ_TIMEOUT = 0.5
    simulator.inject("slow", path=f"/sub-keys/{created.id}", method="PUT", delay=2, times=1)
    sub_key = live(created.id)
    row = topups.top_up(actors.WorkerActor("test"), sub_key, Decimal(2), "test", uuid.uuid4(), Decimal(10**6)).topup
    assert row.outcome == Outcome.UNKNOWN
    settle_before_it_lands(settings)
    assert TopUp.objects.get(pk=row.pk).outcome == Outcome.REFUSED
    assert deliveries("key.topped_up") == 0

    eventually(lambda: budget_of(created.id) == Decimal(12))
    keywrites.resolve_unsettled_writes(late_writes=True)
    keywrites.resolve_unsettled_writes(late_writes=True)

    assert TopUp.objects.get(pk=row.pk).outcome == Outcome.OK
    assert AuditEvent.objects.filter(action=AuditEvent.Action.TOPUP, outcome=Outcome.OK).count() == 2  # the write and its note
    (delivery,) = WebhookDelivery.objects.filter(event_type="key.topped_up")
    assert f'"audit_event_id":{AuditEvent.objects.get(form_token=row.token).pk}' in delivery.body
    client.delete_sub_key(created.id)


# ---------------------------------------------------------------- a starter code's key made late


def given_back_while_its_key_is_slow(owner, settings, simulator, delay):
    """A starter code whose create is settled "not applied" (so the code is given back) while derouter still makes it."""
    _, [text] = codes.create_batch(owner, 1, Decimal(3), CodeBatch.Unit.USD, kind=CodeBatch.Kind.STARTER)
    settings.DEROUTER_READ_TIMEOUT = 0.5
    simulator.inject("slow", path="/sub-keys", method="POST", delay=delay, times=1)
    assert codes.start(text).held
    settle_before_it_lands(settings)
    codes.settle_held_codes()
    code = RedemptionCode.objects.get()
    assert (code.state, code.attempts) == (RedemptionCode.State.UNUSED, 1)
    return text, code


def test_a_starter_codes_key_made_after_the_code_was_given_back_is_its_redemption(owner, settings, simulator, late_keys):
    text, code = given_back_while_its_key_is_slow(owner, settings, simulator, delay=2)
    label = f"Starter …{code.hint}"
    eventually(lambda: keys_labelled(label))
    keywrites.resolve_unsettled_writes(late_writes=True)
    codes.settle_held_codes()

    (late,) = keys_labelled(label)
    code.refresh_from_db()
    assert (code.state, code.sub_key_id, code.amount_usd) == (RedemptionCode.State.REDEEMED, late.id, Decimal(3))
    note = AuditEvent.objects.filter(sub_key_id=late.id, form_token__isnull=True).latest("id")
    assert read_in_english(note.message).startswith(f"Late write: starter code …{code.hint}")
    assert "marked redeemed by this key" in read_in_english(note.message)
    # Typed again, it makes no second key, and says where the first one is.
    again = Client().post(START_URL, {"code": text})
    assert again.status_code == 409 and "ask your provider" in again.content.decode()
    assert keys_labelled(label) == [late]
    codes.settle_held_codes()  # a later pass leaves it be
    assert RedemptionCode.objects.get().sub_key_id == late.id and live(late.id) is not None


def test_a_starter_codes_key_made_after_the_code_made_another_is_deleted(owner, settings, simulator, late_keys):
    text, code = given_back_while_its_key_is_slow(owner, settings, simulator, delay=3)
    label = f"Starter …{code.hint}"
    started = codes.start(text)  # the customer tries again, as told, and is given a key
    assert not started.held
    eventually(lambda: len(keys_labelled(label)) == 2)
    available = client.get_balance().available
    keywrites.resolve_unsettled_writes(late_writes=True)
    codes.settle_held_codes()

    code.refresh_from_db()
    assert (code.state, code.sub_key_id) == (RedemptionCode.State.REDEEMED, started.created.id)
    # Nobody was given the late key: it goes, its budget back to the balance; the customer's key stays.
    assert [key.id for key in keys_labelled(label)] == [started.created.id]
    assert client.get_balance().available == available + 3
    late = AuditEvent.objects.get(form_token=late_starters.starter_token(code, 0))
    (returned,) = TopUp.objects.filter(kind=TopUp.Kind.RETURN, sub_key_id=late.sub_key_id, outcome=Outcome.OK)
    assert returned.amount == Decimal(-3)
    note = AuditEvent.objects.filter(sub_key_id=late.sub_key_id, form_token__isnull=True).latest("id")
    assert "so it is deleted and its budget returned" in read_in_english(note.message)
    codes.settle_held_codes()  # a later pass deletes nothing more
    assert AuditEvent.objects.filter(action=AuditEvent.Action.DELETE, sub_key_id=late.sub_key_id).count() == 1
