"""Messages stored by the worker and the services read in each reader's language; older plain text as recorded."""

import json
import uuid
from decimal import Decimal

import pytest
from django.utils import translation
from django.utils.translation import gettext_lazy, gettext_noop

from automation import alerts
from automation.actors import AUTO_TOP_UP, WorkerActor
from automation.models import AlertRule, WebhookDelivery
from automation.webhooks import create_endpoint
from dashboard import keywrites, topups
from derouter import client
from ledger.models import AuditEvent, Outcome, TopUp
from lib.stored_text import lines, note, read, read_in_english
from tests.untranslated import find_untranslated
from work.models import TaskRun

pytestmark = pytest.mark.django_db
CHINESE = {"zh-CN": "zh-hans", "zh-TW": "zh-hant"}


def test_a_note_reads_in_the_active_language_and_plain_text_as_recorded():
    stored = note(gettext_noop("%(name)s has spent its whole budget of %(budget)s."), name="Acme", budget="$5.00")
    assert read_in_english(stored) == "Acme has spent its whole budget of $5.00."
    with translation.override("zh-hans"):
        assert read(stored) == "Acme 已用完全部预算 $5.00。"
        assert read("derouter did not answer.") == "derouter did not answer."
        # Notes inside notes and several lines, as a task run keeps them.
        nested = note(gettext_noop("alert %(name)s"), name="Low")
        stored_lines = lines(note(gettext_noop("%(what)s: %(outcome)s"), what=nested, outcome=stored), "plain words")
        assert read(stored_lines) == "提醒 Low：Acme 已用完全部预算 $5.00。\nplain words"
    with translation.override("zh-hant"):
        assert read(stored) == "Acme 已用完全部預算 $5.00。"
    # No lines at all is no text (a pass with nothing to report stores its own note instead).
    assert lines() == lines("", None) == ""
    # Cut short (an older column limit) it is no message any more: shown as it is, never an error.
    assert read(stored[:30]) == stored[:30]


def test_an_alert_reads_in_chinese_on_a_chinese_page_and_in_english_in_its_webhook(owner_client, django_capture_on_commit_callbacks):
    create_endpoint("https://hooks.example.com/alerts", ["account.low"], description="Alerts")
    rule = AlertRule.objects.create(name="Low balance", kind=AlertRule.Kind.ACCOUNT_AVAILABLE_UNDER, threshold=Decimal(50))
    with django_capture_on_commit_callbacks(execute=False):
        alert = alerts.evaluate_alert(rule, None, client.Balance(Decimal(40), Decimal(0), Decimal(40)), Decimal(0))
    assert alert is not None
    payload = json.loads(WebhookDelivery.objects.get().body)
    assert payload["data"]["message"] == "The account's available balance is $40.00, under $50.00."

    page = owner_client.get("/dashboard/automation/alerts/history/", HTTP_ACCEPT_LANGUAGE="zh-CN").content.decode()
    assert "账户可用余额为 $40.00，低于 $50.00。" in page
    assert "available balance" not in page
    page = owner_client.get("/dashboard/automation/alerts/history/", HTTP_ACCEPT_LANGUAGE="zh-TW").content.decode()
    assert "帳戶可用餘額為 $40.00，低於 $50.00。" in page


@pytest.mark.parametrize("accept_language", CHINESE)
def test_task_runs_and_audit_changes_read_in_chinese(owner, owner_client, accept_language):
    TaskRun.objects.create(name="automation.evaluate", status=TaskRun.Status.OK, detail=note(gettext_noop("Nothing to do.")))
    TaskRun.objects.create(name="automation.evaluate", status=TaskRun.Status.FAILED, error=note(gettext_noop("interrupted")))
    AuditEvent.objects.create(
        actor=owner, actor_name="olivia", action=AuditEvent.Action.USER_ACCESS, outcome=Outcome.OK, subject_name="sam",
        changes={"role": ["owner", "staff"], "can_see_margins": [True, False], "daily_topup_cap": [None, "25"]},
    )
    AuditEvent.objects.create(
        actor=owner, actor_name="olivia", action=AuditEvent.Action.AUTOMATION_ADD, outcome=Outcome.OK,
        changes={"automation": [None, "alert rule “Low”"], "kind": [None, "Account: available balance under an amount"],
                 "enabled": [None, True]},
    )
    with translation.override(CHINESE[accept_language]):
        expected_run, expected_interrupted = translation.gettext("Nothing to do."), translation.gettext("interrupted")
        expected_fields = [str(translation.gettext(words)) for words in ("Role", "May see margins", "Daily top-up cap", "alert rule")]
    automation = owner_client.get("/dashboard/automation/", HTTP_ACCEPT_LANGUAGE=accept_language).content.decode()
    assert expected_run in automation and expected_interrupted in automation and "Nothing to do" not in automation
    audit = owner_client.get("/dashboard/audit/", HTTP_ACCEPT_LANGUAGE=accept_language).content.decode()
    assert all(field in audit for field in expected_fields), expected_fields
    assert find_untranslated(audit) == []


@pytest.mark.parametrize("accept_language", CHINESE)
def test_a_ledger_rows_refusal_reads_in_chinese_on_the_ledger_page(owner_client, make_key, accept_language):
    key = make_key("10", label="Acme")
    # The worker's moves check the available balance before asking derouter: refused with the service's own words.
    topups.top_up(WorkerActor(AUTO_TOP_UP), key, Decimal(5), "rule", str(uuid.uuid4()), Decimal(1))
    assert read_in_english(TopUp.objects.get().message) == "Only $1.00 of the account's balance is available; $5.00 was asked for."

    page = owner_client.get("/dashboard/topups/", HTTP_ACCEPT_LANGUAGE=accept_language).content.decode()
    expected = {"zh-CN": ("账户余额中仅有", "请求的金额为"), "zh-TW": ("帳戶餘額中僅有", "請求的金額為")}[accept_language]
    assert all(words in page for words in expected)
    assert "was asked for" not in page


# ---------------------------------------------------------------- key writes: settled, not kept, refused unsent

KEY_WRITE_WORDS = {
    # A delete confirmed from derouter's key list, an edit it did not keep, a delete refused unsent (a top-up may land).
    "zh-CN": ("已确认：derouter 已不再列出该密钥 （于", "未生效：该密钥的设置没有变化 （于",
              "未发送：", "充值尚未结算，而已删除密钥的预算无法再说明它是否已生效"),
    "zh-TW": ("已確認：derouter 已不再列出該金鑰 （於", "未生效：該金鑰的設定沒有變化 （於",
              "未傳送：", "儲值尚未結算，而已刪除金鑰的預算無法再說明它是否已生效"),
}


def _listed(sub_key_id):
    return next(key for key in client.list_sub_keys() if key.id == sub_key_id)


def _key_write_events(owner, simulator, make_key, settings):
    """Three key writes settled with stored messages: (the confirmed delete, the edit not kept, the refused delete)."""
    confirmed = make_key("1", label="Doomed")
    simulator.inject("applied-then-drop", path=f"/sub-keys/{confirmed.id}", method="DELETE")
    assert keywrites.delete_key(owner, _listed(confirmed.id)).is_unknown
    kept = make_key("1", label="Unchanged")
    simulator.inject("error", path=f"/sub-keys/{kept.id}", method="PUT", status=500)
    assert keywrites.edit_key(owner, _listed(kept.id), {"label": ("Unchanged", "Renamed")}).is_unknown
    simulator.clear_faults()
    settings.WRITE_SETTLE_SECONDS = 0
    keywrites.resolve_unsettled_writes()

    settings.WRITE_SETTLE_SECONDS = 600
    waiting = make_key("5", label="Waiting")
    simulator.inject("error", path=f"/sub-keys/{waiting.id}", method="PUT", status=500)
    assert topups.top_up(owner, _listed(waiting.id), Decimal(2), "INV-9", uuid.uuid4(), Decimal(100000)).topup.outcome == Outcome.UNKNOWN
    simulator.clear_faults()
    refused = keywrites.delete_key(owner, _listed(waiting.id))
    assert refused.is_refused and not refused.was_sent
    events = {event.sub_key_id: event for event in AuditEvent.objects.filter(
        action__in=(AuditEvent.Action.DELETE, AuditEvent.Action.EDIT))}
    return events[confirmed.id], events[kept.id], events[waiting.id]


def test_key_write_messages_read_in_english_for_programs(owner, simulator, make_key, settings):
    confirmed, not_kept, refused = _key_write_events(owner, simulator, make_key, settings)

    assert (confirmed.outcome, not_kept.outcome) == (Outcome.OK, Outcome.REFUSED)
    assert read_in_english(confirmed.message).startswith("Confirmed: derouter no longer lists the key (checked ")
    assert read_in_english(not_kept.message).startswith("Not applied: the key's settings are unchanged (checked ")
    assert read_in_english(refused.message).startswith("Not sent: the top-up of $2.00 on ")
    assert read_in_english(refused.message).endswith(
        "UTC is not settled yet, and a deleted key's budget can no longer tell whether it landed; try again in a minute.")


@pytest.mark.parametrize("accept_language", CHINESE)
def test_key_write_messages_read_in_chinese_on_the_audit_page_and_the_ledger(
    owner, owner_client, simulator, make_key, settings, accept_language,
):
    _key_write_events(owner, simulator, make_key, settings)

    audit = owner_client.get("/dashboard/audit/", HTTP_ACCEPT_LANGUAGE=accept_language).content.decode()
    assert all(words in audit for words in KEY_WRITE_WORDS[accept_language]), KEY_WRITE_WORDS[accept_language]
    assert "msgid" not in audit and "Confirmed" not in audit and "Not applied" not in audit
    # The confirmed delete's return line carries its message: the ledger reads it too, and its CSV in English.
    ledger = owner_client.get("/dashboard/topups/", HTTP_ACCEPT_LANGUAGE=accept_language).content.decode()
    assert KEY_WRITE_WORDS[accept_language][0] in ledger and "msgid" not in ledger
    csv = b"".join(owner_client.get("/dashboard/topups/export.csv", HTTP_ACCEPT_LANGUAGE=accept_language)).decode()
    assert "Confirmed: derouter no longer lists the key (checked " in csv and "msgid" not in csv


@pytest.mark.parametrize("accept_language", CHINESE)
def test_a_delete_derouter_answers_with_an_error_says_so_in_chinese(owner_client, simulator, make_key, accept_language):
    key = make_key("1", label="Shaky")
    simulator.inject("error", path=f"/sub-keys/{key.id}", method="DELETE", status=503)

    response = owner_client.post(f"/dashboard/keys/{key.id}/delete/", HTTP_ACCEPT_LANGUAGE=accept_language)

    assert response.status_code == 503
    page = response.content.decode()
    assert {"zh-CN": "derouter 返回了错误：", "zh-TW": "derouter 回傳了錯誤："}[accept_language] in page
    assert "msgid" not in page and "answered with an error" not in page
    event = AuditEvent.objects.get(action=AuditEvent.Action.DELETE)
    assert read_in_english(event.message).startswith("derouter answered with an error: ")


def test_a_lazy_value_is_kept_as_its_msgid_whatever_language_writes_it():
    with translation.override("zh-hans"):
        stored = note(gettext_noop("Not sent: %(reason)s."), reason=gettext_lazy("interrupted"))
    assert read_in_english(stored) == "Not sent: interrupted."
    with translation.override("zh-hant"):
        assert read(stored) == f"未傳送：{translation.gettext('interrupted')}。"
