"""What rotations, expiries, auto top-ups and the money-in check store reads in each reader's language.

Written while a Chinese page is active, each still reads in English for programs (webhook
payloads, the ledger CSV): it was stored as a note, not frozen in the writer's language.
"""

import csv
import datetime
import io
import json
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone
from django.utils.translation import gettext_noop

from automation import evaluation, webhooks
from automation.models import AutoTopUpRule, KeyExpiry, Rotation, WebhookDelivery
from branding.models import Branding
from derouter import client as derouter_client
from ledger.models import Outcome, TopUp
from lib.stored_text import note, read_in_english
from mirror.key_store import secret_digest
from payments import reconcile

pytestmark = pytest.mark.django_db
CHINESE = {"zh-CN": "zh-hans", "zh-TW": "zh-hant"}
RAW = '{"msgid"'


def rotate(owner_client, key, language):
    page = owner_client.get(f"/dashboard/automation/keys/{key.id}/rotate/", HTTP_ACCEPT_LANGUAGE=language)
    token = page.context["form"]["token"].value()
    return owner_client.post(f"/dashboard/automation/keys/{key.id}/rotate/", {"token": token}, HTTP_ACCEPT_LANGUAGE=language)


@pytest.mark.parametrize("accept_language", CHINESE)
def test_a_refused_rotation_reads_in_chinese_on_its_page_and_in_english_for_programs(
    owner_client, simulator, make_key, accept_language
):
    old = make_key(budget="3", label="Refused")
    simulator.inject("error", path="/sub-keys", method="POST", status=400, times=1)
    rotate(owner_client, old, accept_language)

    rotation = Rotation.objects.get()
    said = read_in_english(rotation.message)
    assert said.startswith("derouter refused the new key: ") and said.endswith(" Nothing was changed.")
    page = owner_client.get(f"/dashboard/automation/rotations/{rotation.pk}/", HTTP_ACCEPT_LANGUAGE=accept_language).content.decode()
    expected = {"zh-CN": ("derouter 拒绝了新密钥：", "未作任何更改。"), "zh-TW": ("derouter 拒絕了新金鑰：", "未作任何變更。")}
    assert all(words in page for words in expected[accept_language])
    assert "Nothing was changed" not in page and RAW not in page


@pytest.mark.parametrize("accept_language", CHINESE)
def test_a_rotations_delete_says_why_in_english_in_its_webhook_and_in_chinese_in_the_ledger(
    owner_client, make_key, accept_language, django_capture_on_commit_callbacks
):
    webhooks.create_endpoint("https://hooks.example.com/keys", ["key.deleted"])
    old = make_key(budget="4", label="Rotated")
    with django_capture_on_commit_callbacks(execute=False):
        rotate(owner_client, old, accept_language)

    rotation = Rotation.objects.get()
    assert rotation.status == Rotation.Status.DONE
    (delivery,) = WebhookDelivery.objects.filter(event_type="key.deleted")
    payload = json.loads(delivery.body)
    assert payload["data"]["message"] == f"Rotation #{rotation.pk}: replaced by {rotation.new_key_id_short}."

    ledger = owner_client.get("/dashboard/topups/", HTTP_ACCEPT_LANGUAGE=accept_language).content.decode()
    expected = {"zh-CN": f"轮换 #{rotation.pk}：已由 {rotation.new_key_id_short} 替换。",
                "zh-TW": f"輪換 #{rotation.pk}：已由 {rotation.new_key_id_short} 取代。"}
    assert expected[accept_language] in ledger
    assert "replaced by" not in ledger and RAW not in ledger


@pytest.mark.parametrize("accept_language", CHINESE)
def test_an_auto_top_ups_ledger_note_reads_in_chinese_on_every_page_and_in_english_in_the_csv(
    owner_client, simulator, make_key, accept_language, django_capture_on_commit_callbacks
):
    created = make_key(budget="10", label="Driven")
    AutoTopUpRule.objects.create(name="Refill $5", sub_key_id=created.id, threshold=Decimal(3), amount=Decimal(5))
    simulator.add_usage(created.id, "8")
    with django_capture_on_commit_callbacks(execute=True):
        evaluation.evaluate()

    topup = TopUp.objects.get(actor_name="auto top-up")
    assert topup.outcome == Outcome.OK and read_in_english(topup.note) == "Auto top-up rule: Refill $5"
    expected = {"zh-CN": "自动充值规则：Refill $5", "zh-TW": "自動儲值規則：Refill $5"}[accept_language]
    for url in ("/dashboard/topups/", f"/dashboard/keys/{created.id}/", "/dashboard/"):
        page = owner_client.get(url, HTTP_ACCEPT_LANGUAGE=accept_language).content.decode()
        assert expected in page, url
        assert "Auto top-up rule" not in page and RAW not in page, url

    response = owner_client.get("/dashboard/topups/export.csv", HTTP_ACCEPT_LANGUAGE=accept_language)
    text = b"".join(response.streaming_content).decode("utf-8")
    assert RAW not in text
    rows = list(csv.reader(io.StringIO(text)))
    assert [row[6] for row in rows[1:]] == ["Auto top-up rule: Refill $5"]


@pytest.mark.parametrize("language, expected", [
    ("zh-hans", "此密钥已于"), ("zh-hant", "此金鑰已於"), ("en", "This key expired on"),
])
def test_an_expired_keys_portal_message_reads_in_the_portals_language(client, make_key, language, expected):
    created = make_key(budget="1", label="Ended")
    KeyExpiry.objects.create(
        sub_key_id=created.id, key_label=created.label, key_id_short=created.key_id, status=KeyExpiry.Status.EXPIRED,
        secret_sha256=secret_digest(created.secret.reveal()), expires_at=timezone.now() - datetime.timedelta(days=1),
        expired_at=timezone.now(),
    )
    derouter_client.delete_sub_key(created.id)
    Branding(portal_language=language).save()

    page = client.post("/portal/login/", {"client_key": created.secret.reveal()}, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert expected in page


@pytest.mark.parametrize("accept_language", CHINESE)
def test_a_money_in_problem_reads_in_chinese_on_the_reconciliation_page_and_in_english_for_the_command(
    owner_client, make_key, accept_language
):
    key = make_key(budget="1", label="Acme Corp")
    card_note = note(gettext_noop("card payment, receipt #%(number)s (%(price)s %(currency)s)"), number=99, price="20.00", currency="USD")
    TopUp.objects.create(token=uuid.uuid4(), actor=None, actor_name="card payment", sub_key_id=key.id, key_label="Acme Corp",
                         amount=Decimal("5"), note=card_note, outcome=Outcome.OK)
    reconcile.check()

    page = owner_client.get("/dashboard/reconciliation/", HTTP_ACCEPT_LANGUAGE=accept_language).content.decode()
    expected = {"zh-CN": ("卡付款，收据 #99（20.00 USD）", "没有任何已付款订单"), "zh-TW": ("卡付款，收據 #99（20.00 USD）", "沒有任何已付款訂單")}
    assert all(words in page for words in expected[accept_language])
    assert "accounts for" not in page and RAW not in page
    said, count = reconcile.MONEY_IN_CHECK.run_for_command()
    assert count == 1 and "(card payment, receipt #99 (20.00 USD)) credited $5" in said[0]
