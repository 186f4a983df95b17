"""Client Key pages and actions, against the live simulator over HTTP."""

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ledger.models import AuditEvent, Outcome, TopUp
from derouter import client as derouter_client
from lib.money import usd
from mirror import snapshot as mirror_snapshot
from mirror.models import KeySnapshot, SyncState
from tests.helpers import eventually, find_key, hang_derouter, keys_labelled

pytestmark = pytest.mark.django_db

XSS_LABEL = "<script>alert(1)</script>"
LIVE_BALANCE = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "account-balance"}
LIVE_KEY_BUDGET = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "key-budget"}


def create_data(**overrides):
    return {"label": "Acme Corp", "budget": "1.50", "rpm_limit": "30", **overrides}


# ---------------------------------------------------------------- money filter


# ---------------------------------------------------------------- overview


def test_overview_shows_money_keys_low_keys_and_latest_topups(owner_client, make_key, simulator, owner, sync_mirror):
    low = make_key("1", label="Nearly empty")
    simulator.add_usage(low.id, "0.95")
    sync_mirror()
    TopUp.objects.create(token=uuid.uuid4(), actor_name="olivia", sub_key_id=low.id, key_label="Nearly empty", amount=Decimal("7.25"), outcome=Outcome.OK)
    balance = derouter_client.get_balance()
    keys = derouter_client.list_sub_keys()

    page = owner_client.get(reverse("console:overview")).content.decode()
    live = owner_client.get(reverse("console:overview"), **LIVE_BALANCE).content.decode()

    for amount in (sum(k.budget for k in keys), sum(k.spent for k in keys)):
        assert usd(amount) in page
    assert "Nearly empty" in page
    assert reverse("console:key_topup", args=[low.id]) in page
    assert "$7.25" in page
    for amount in (balance.balance, balance.locked, balance.available):
        assert usd(amount) in live
    assert "As derouter reports it now" in live


def test_overview_answers_from_the_mirror_and_asks_derouter_only_for_the_live_balance(
    owner_client, make_key, upstream_calls  # noqa: F811
):
    make_key()
    before = upstream_calls()
    page = owner_client.get(reverse("console:overview"))
    assert upstream_calls() - before == 0
    assert 'data-hx-trigger="load"' in page.content.decode()
    owner_client.get(reverse("console:overview"), **LIVE_BALANCE)
    assert upstream_calls() - before == 1


def test_overview_shows_the_last_balance_read_with_its_age(owner_client, make_key):
    make_key()
    live = owner_client.get(reverse("console:overview"), **LIVE_BALANCE).content.decode()
    available = derouter_client.get_balance().available

    page = owner_client.get(reverse("console:overview")).content.decode()

    assert usd(available) in live and usd(available) in page
    assert "Balance as of" in page


def test_overview_and_key_page_answer_while_derouter_hangs(owner_client, make_key, simulator):
    created = make_key(label="While it hangs")
    hang_derouter(simulator)

    overview = owner_client.get(reverse("console:overview"))
    key_page = owner_client.get(reverse("console:key_detail", args=[created.id]))

    # Had either page waited for derouter, it would have given up (the read timeout) and said so.
    assert overview.status_code == 200 and key_page.status_code == 200
    for page in (overview, key_page):
        assert "cannot be reached" not in page.content.decode()
    assert "While it hangs" in key_page.content.decode()


def test_overview_live_balance_says_when_derouter_cannot_answer(owner_client, make_key, simulator):
    make_key()
    owner_client.get(reverse("console:overview"), **LIVE_BALANCE)
    simulator.inject("error", path="/balance", status=503, times=0)

    live = owner_client.get(reverse("console:overview"), **LIVE_BALANCE)

    assert live.status_code == 200
    assert "derouter cannot be reached right now: the balance is as of" in live.content.decode()


# ---------------------------------------------------------------- list


def test_list_shows_keys_without_their_secrets(owner_client, make_key):
    created = make_key("1", label="Listed client")
    response = owner_client.get(reverse("console:key_list"), {"q": "Listed client"})
    body = response.content.decode()
    assert response.status_code == 200
    assert "Listed client" in body
    assert created.key_id in body
    assert created.secret.reveal() not in body
    assert response["Vary"] and "HX-Request" in response["Vary"]


def test_list_search_by_key_id_and_upstream_id(owner_client, make_key):
    created = make_key("1", label="Findable")
    for query in (created.key_id, created.id):
        body = owner_client.get(reverse("console:key_list"), {"q": query}).content.decode()
        assert "Findable" in body, query


def test_list_sorts_by_each_column_both_ways(owner_client, make_key):
    make_key("1", label="Sort A")
    make_key("2", label="Sort B")
    for column in ("label", "key_id", "budget", "spent", "remaining", "rpm_limit", "concurrent_limit", "display_multiplier", "created_at"):
        for sort in (column, f"-{column}"):
            assert owner_client.get(reverse("console:key_list"), {"sort": sort}).status_code == 200
    ascending = owner_client.get(reverse("console:key_list"), {"q": "Sort ", "sort": "budget"}).content.decode()
    descending = owner_client.get(reverse("console:key_list"), {"q": "Sort ", "sort": "-budget"}).content.decode()
    assert ascending.index("Sort A") < ascending.index("Sort B")
    assert descending.index("Sort B") < descending.index("Sort A")


def test_list_bad_query_values_fall_back_to_defaults(owner_client):
    response = owner_client.get(reverse("console:key_list"), {"sort": "secret; drop", "page": "-4", "q": "x" * 500})
    assert response.status_code == 200
    assert owner_client.get(reverse("console:key_list"), {"page": "99999"}).status_code == 200


def test_list_empty_search_says_no_keys_match(owner_client):
    body = owner_client.get(reverse("console:key_list"), {"q": "no-such-key-anywhere"}).content.decode()
    assert "No keys match" in body


def test_list_htmx_gets_only_the_table_fragment(owner_client, make_key):
    make_key("1", label="Fragment client")
    response = owner_client.get(reverse("console:key_list"), {"q": "Fragment"}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200
    assert '<div id="keys"' in body
    assert "<html" not in body
    assert "Fragment client" in body


def test_list_pages_by_25(owner_client, make_key):
    for number in range(27):
        make_key("0.01", label=f"Paged {number:02d}")
    first = owner_client.get(reverse("console:key_list"), {"q": "Paged", "sort": "label"}).content.decode()
    second = owner_client.get(reverse("console:key_list"), {"q": "Paged", "sort": "label", "page": "2"}).content.decode()
    assert "Paged 00" in first and "Paged 24" in first and "Paged 25" not in first
    assert "Paged 25" in second and "Paged 26" in second and "Paged 00" not in second


def test_list_reads_the_snapshot_without_asking_derouter(owner_client, make_key, upstream_calls):  # noqa: F811
    make_key()
    before = upstream_calls()
    owner_client.get(reverse("console:key_list"), {"q": "x", "sort": "-spent"})
    assert upstream_calls() == before


def test_xss_label_is_shown_as_text(owner_client, make_key):
    created = make_key("1", label=XSS_LABEL)
    for url in (reverse("console:key_list"), reverse("console:key_detail", args=[created.id])):
        body = owner_client.get(url, {"q": XSS_LABEL} if url.endswith("/keys/") else {}).content.decode()
        assert XSS_LABEL not in body
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


# ---------------------------------------------------------------- create


def test_create_form_shows_available(owner_client):
    response = owner_client.get(reverse("console:key_create"))
    assert response.status_code == 200
    assert usd(derouter_client.get_balance().available) in response.content.decode()


def test_create_shows_the_full_key_once_with_quick_start(owner_client, settings):
    response = owner_client.post(reverse("console:key_create"), create_data())
    assert response.status_code == 200
    event = AuditEvent.objects.get(action=AuditEvent.Action.CREATE)
    assert event.outcome == Outcome.OK and event.key_label == "Acme Corp"
    created = find_key(event.sub_key_id)
    secret = created.secret.reveal()
    body = response.content.decode()
    assert secret in body
    assert settings.DEROUTER_INFERENCE_BASE in body
    assert "http://testserver/portal/login/" in body
    assert 'data-copy-target="#full-key"' in body
    assert "no-store" in response["Cache-Control"]
    assert created.budget == Decimal("1.5") and created.rpm_limit == 30

    for url in (reverse("console:key_list"), reverse("console:key_detail", args=[created.id]), reverse("console:overview")):
        assert secret not in owner_client.get(url).content.decode()


@pytest.mark.parametrize(
    "data",
    [
        create_data(budget="0"),
        create_data(budget="-1"),
        create_data(budget="1.23456"),
        create_data(budget="abc"),
        create_data(budget=""),
        create_data(rpm_limit="0"),
        create_data(rpm_limit="61"),
        create_data(label="x" * 101),
    ],
)
def test_create_field_errors_send_nothing_upstream(owner_client, data, upstream_calls):  # noqa: F811
    response = owner_client.post(reverse("console:key_create"), data)
    assert response.status_code == 400
    assert 'class="errorlist' in response.content.decode()
    assert upstream_calls() == 0
    assert not AuditEvent.objects.exists()


def test_create_over_available_is_refused_before_the_upstream(owner_client):
    before = derouter_client.get_balance()
    count = len(derouter_client.list_sub_keys())
    response = owner_client.post(reverse("console:key_create"), create_data(budget=str(before.available + 1)))
    assert response.status_code == 400
    assert "is available" in response.content.decode()
    assert derouter_client.get_balance() == before
    assert len(derouter_client.list_sub_keys()) == count


def test_create_shows_the_upstream_refusal(owner_client, simulator):
    simulator.inject("error", path="/sub-keys", method="POST", status=400)
    response = owner_client.post(reverse("console:key_create"), create_data())
    assert response.status_code == 400
    assert "Simulated server error" in response.content.decode()
    event = AuditEvent.objects.get()
    assert event.outcome == Outcome.REFUSED and event.message == "Simulated server error"


def test_create_when_upstream_errors_is_a_503_page(owner_client, simulator):
    simulator.inject("error", path="/balance", times=10)
    response = owner_client.get(reverse("console:key_create"))
    assert response.status_code == 503
    assert "derouter is not answering" in response.content.decode()


def test_create_timeout_reports_an_unknown_outcome(owner_client, simulator, settings):
    settings.DEROUTER_READ_TIMEOUT = 0.5
    simulator.inject("slow", path="/sub-keys", method="POST", delay=1)
    response = owner_client.post(reverse("console:key_create"), create_data(label="Maybe made"))
    assert response.status_code == 503
    body = response.content.decode()
    assert "may or may not have been created" in body
    assert reverse("console:key_list") in body
    event = AuditEvent.objects.get()
    assert event.outcome == Outcome.UNKNOWN and event.key_label == "Maybe made"
    eventually(lambda: any(key.label == "Maybe made" for key in derouter_client.list_sub_keys()))


def test_create_needs_a_csrf_token(owner):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(owner)
    assert csrf_client.post(reverse("console:key_create"), create_data()).status_code == 403
    assert not AuditEvent.objects.exists()


# ---------------------------------------------------------------- key page


def test_key_page_shows_details_logs_topups_and_audit(owner_client, make_key, simulator, sync_mirror):
    created = make_key("3", label="Detailed")
    simulator.add_usage(created.id, "0.25", inputTokens=1234, outputTokens=56)
    sync_mirror(created.id)
    TopUp.objects.create(token=uuid.uuid4(), actor_name="olivia", sub_key_id=created.id, amount=Decimal("4.5"), note="INV-42", outcome=Outcome.OK)
    AuditEvent.objects.create(actor_name="olivia", action=AuditEvent.Action.EDIT, sub_key_id=created.id, outcome=Outcome.OK, changes={"label": ["a", "b"]})

    response = owner_client.get(reverse("console:key_detail", args=[created.id]))

    body = response.content.decode()
    assert response.status_code == 200
    assert "Detailed" in body and created.key_id in body
    assert "1,234" in body and "$0.25" in body
    assert "INV-42" in body and "$4.50" in body
    assert "Edit key" in body
    assert created.secret.reveal() not in body


def test_key_logs_page_size_and_htmx_fragment(owner_client, make_key, simulator, sync_mirror):
    created = make_key("3", label="Logged")
    for _ in range(3):
        simulator.add_usage(created.id, "0.01")
    sync_mirror(created.id)
    url = reverse("console:key_detail", args=[created.id])
    response = owner_client.get(url, {"limit": "50", "page": "1"}, headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 200
    assert 'id="key-logs"' in body and "<html" not in body
    assert "3 requests" in body
    assert owner_client.get(url, {"limit": "7", "page": "zero"}).status_code == 200


def test_non_uuid_id_is_404_without_upstream_call(owner_client, upstream_calls):  # noqa: F811
    for action in ("", "edit/", "delete/", "topup/"):
        assert owner_client.get(f"/dashboard/keys/not-a-key/{action}").status_code == 404
    assert owner_client.post("/dashboard/keys/not-a-key/reveal/").status_code == 404
    assert upstream_calls() == 0


def test_a_key_deleted_elsewhere_has_a_page_that_says_so_and_an_unknown_key_is_404(owner_client, make_key):
    created = make_key("1", label="Deleted Elsewhere")
    derouter_client.delete_sub_key(created.id)
    # The page reads the snapshot: a key deleted at derouter is marked deleted at the worker's next refresh.
    mirror_snapshot.refresh_snapshot()
    response = owner_client.get(reverse("console:key_detail", args=[created.id]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Deleted Elsewhere" in body and "deleted outside this console" in body
    assert reverse("console:key_topup", args=[created.id]) not in body
    assert owner_client.get(reverse("console:key_detail", args=[str(uuid.uuid4())])).status_code == 404


# ---------------------------------------------------------------- edit


def test_edit_sends_only_changes_and_audits_them(owner_client, make_key):
    created = make_key("2", label="Before", rpm_limit=20)
    url = reverse("console:key_edit", args=[created.id])
    assert owner_client.get(url).status_code == 200

    response = owner_client.post(url, {"label": "After", "rpm_limit": "20", "display_multiplier": "4"})

    assert response.status_code == 302
    edited = find_key(created.id)
    assert (edited.label, edited.rpm_limit, edited.display_multiplier) == ("After", 20, Decimal(4))
    event = AuditEvent.objects.get(action=AuditEvent.Action.EDIT)
    assert event.outcome == Outcome.OK
    assert event.changes == {"label": ["Before", "After"], "display_multiplier": ["1", "4"]}


def test_edit_without_changes_sends_nothing(owner_client, make_key):
    created = make_key("2", label="Same", rpm_limit=60)
    response = owner_client.post(reverse("console:key_edit", args=[created.id]), {"label": "Same", "rpm_limit": "60", "display_multiplier": "1.0000"})
    assert response.status_code == 302
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize(
    "data",
    [
        {"label": "x", "rpm_limit": "0", "display_multiplier": "1"},
        {"label": "x", "rpm_limit": "61", "display_multiplier": "1"},
        {"label": "x", "rpm_limit": "10", "display_multiplier": "0.5"},
        {"label": "x", "rpm_limit": "10", "display_multiplier": "1.23456"},
        {"label": "x" * 101, "rpm_limit": "10", "display_multiplier": "1"},
    ],
)
def test_edit_field_errors_are_400_and_change_nothing(owner_client, make_key, data):
    created = make_key("1", label="Untouched")
    response = owner_client.post(reverse("console:key_edit", args=[created.id]), data)
    assert response.status_code == 400
    assert find_key(created.id).label == "Untouched"
    assert not AuditEvent.objects.exists()


def test_edit_preview_uses_real_spent(owner_client, make_key, simulator):
    created = make_key("50", label="Previewed")
    simulator.add_usage(created.id, "10")
    url = reverse("console:key_edit", args=[created.id])
    page = owner_client.get(url).content.decode()
    assert "$10.00 spent shows as" in page
    fragment = owner_client.get(url, {"display_multiplier": "4"}, headers={"HX-Request": "true"}).content.decode()
    assert "$10.00 spent shows as <strong>$40.00</strong>" in fragment
    assert "$200.00" in fragment and "<html" not in fragment
    invalid = owner_client.get(url, {"display_multiplier": "0.2"}, headers={"HX-Request": "true"})
    assert invalid.status_code == 200 and "errorlist" in invalid.content.decode()


def test_edit_timeout_reports_an_unknown_outcome(owner_client, make_key, simulator, settings):
    created = make_key("1", label="Slow edit")
    settings.DEROUTER_READ_TIMEOUT = 0.5
    simulator.inject("slow", path="/sub-keys/", method="PUT", delay=1)
    response = owner_client.post(reverse("console:key_edit", args=[created.id]), {"label": "Slow edit 2", "rpm_limit": "60", "display_multiplier": "1"})
    assert response.status_code == 503
    assert "may or may not have happened" in response.content.decode()
    assert AuditEvent.objects.get().outcome == Outcome.UNKNOWN
    eventually(lambda: find_key(created.id).label == "Slow edit 2")


# ---------------------------------------------------------------- reveal


def test_reveal_shows_the_key_and_audits(owner_client, make_key):
    created = make_key("1", label="Revealed")
    url = reverse("console:key_reveal", args=[created.id])
    assert owner_client.get(url).status_code == 405
    response = owner_client.post(url)
    assert response.status_code == 200
    assert created.secret.reveal() in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert created.secret.reveal() not in response.get("Location", "") + str(response.cookies)
    event = AuditEvent.objects.get()
    assert (event.action, event.outcome, event.sub_key_id) == (AuditEvent.Action.REVEAL, Outcome.OK, created.id)


def test_reveal_needs_a_csrf_token(owner, make_key):
    created = make_key("1")
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(owner)
    assert csrf_client.post(reverse("console:key_reveal", args=[created.id])).status_code == 403


# ---------------------------------------------------------------- delete


def test_delete_confirms_then_returns_the_budget(owner_client, make_key, simulator):
    created = make_key("2", label="Doomed")
    simulator.add_usage(created.id, "0.5")
    url = reverse("console:key_delete", args=[created.id])
    confirm = owner_client.get(url).content.decode()
    assert "Doomed" in confirm and created.key_id in confirm and "$1.50" in confirm
    available_before = derouter_client.get_balance().available

    response = owner_client.post(url, follow=True)

    assert response.redirect_chain[-1][0] == reverse("console:key_list")
    assert "Deleted Doomed" in response.content.decode()
    assert find_key(created.id) is None
    assert derouter_client.get_balance().available == available_before + Decimal("1.5")
    assert AuditEvent.objects.get().outcome == Outcome.OK
    # Its page stays, to read: when, by whom, what returned, its history; nothing to change.
    page = owner_client.get(reverse("console:key_detail", args=[created.id]))
    assert page.status_code == 200
    body = page.content.decode()
    assert "by olivia" in body and "Its unspent budget, $1.50, went back to the available balance." in body
    assert "Delete key" in body  # its audit history
    for action in ("key_topup", "key_edit", "key_delete", "key_reveal"):
        assert reverse(f"console:{action}", args=[created.id]) not in body


def test_delete_of_a_key_already_gone_upstream(owner_client, make_key, simulator):
    created = make_key("1", label="Gone")
    simulator.inject("error", path=f"/sub-keys/{created.id}", method="DELETE", status=404)
    response = owner_client.post(reverse("console:key_delete", args=[created.id]), follow=True)
    assert "already gone" in response.content.decode()
    assert AuditEvent.objects.get().outcome == Outcome.REFUSED


def test_delete_timeout_reports_an_unknown_outcome(owner_client, make_key, simulator, settings):
    created = make_key("1", label="Slow delete")
    settings.DEROUTER_READ_TIMEOUT = 0.5
    simulator.inject("slow", path="/sub-keys/", method="DELETE", delay=1)
    response = owner_client.post(reverse("console:key_delete", args=[created.id]))
    assert response.status_code == 503
    assert "may or may not have happened" in response.content.decode()
    assert AuditEvent.objects.get().outcome == Outcome.UNKNOWN
    eventually(lambda: find_key(created.id) is None)


# ---------------------------------------------------------------- many keys


@pytest.fixture
def five_thousand_keys(tmp_path, settings):
    """A second simulator seeded with 5,000 keys, wired into the settings for one test."""
    from tests.helpers import start_simulator, stop_simulator

    account_key = "sk-ant-acct-load-" + uuid.uuid4().hex
    loaded = start_simulator(tmp_path / "load.sqlite3", account_key, balance="100000", extra_args=["--seed-keys", "5000"])
    settings.DEROUTER_API_BASE = loaded.base_url
    settings.DEROUTER_ACCOUNT_KEY = account_key
    mirror_snapshot.refresh_snapshot()
    yield loaded
    stop_simulator(loaded)


def test_list_pages_5000_keys(owner_client, five_thousand_keys):
    response = owner_client.get(reverse("console:key_list"), {"sort": "-remaining", "page": "3"})
    assert response.status_code == 200
    assert "of 5000 keys" in response.content.decode()
    assert response.content.decode().count("<tr>") == 25 + 1


# ---------------------------------------------------------------- create once per form


def test_create_form_carries_a_one_time_token(owner_client):
    response = owner_client.get(reverse("console:key_create"))
    assert 'name="token"' in response.content.decode()


def test_the_same_create_form_twice_makes_one_key(owner_client):
    token = str(uuid.uuid4())
    data = create_data(label=f"Once {token[:8]}", token=token)
    before = derouter_client.get_balance().available

    first = owner_client.post(reverse("console:key_create"), data)
    second = owner_client.post(reverse("console:key_create"), data)

    assert first.status_code == 200
    assert second.status_code == 200
    assert "This form was already sent" in second.content.decode()
    made = [key for key in derouter_client.list_sub_keys() if key.label == data["label"]]
    assert len(made) == 1
    assert made[0].secret.reveal() not in second.content.decode()
    assert before - derouter_client.get_balance().available == Decimal("1.50")
    event = AuditEvent.objects.get(form_token=token)
    assert (event.outcome, event.sub_key_id) == (Outcome.OK, made[0].id)


def test_a_refused_create_offers_the_form_again_with_a_new_token(owner_client, simulator):
    simulator.inject("error", path="/sub-keys", method="POST", status=400)
    token = str(uuid.uuid4())
    response = owner_client.post(reverse("console:key_create"), create_data(token=token))
    assert response.status_code == 400
    assert token not in response.content.decode()
    assert AuditEvent.objects.get(form_token=token).outcome == Outcome.REFUSED


# Bug: the "Key created" notice ended "sk-ant-abc....", the short key's dots plus a full stop.
@pytest.mark.django_db
def test_created_notice_does_not_run_dots_together(owner_client):
    response = owner_client.post("/dashboard/keys/new/", {"label": "QA wording", "budget": "1", "rpm_limit": "60"})
    try:
        body = response.content.decode()
        assert response.status_code == 200
        assert "...</span>." not in body
        assert "shows only its short form" in body
    finally:
        for key in keys_labelled("QA wording"):
            derouter_client.delete_sub_key(key.id)


def test_the_key_pages_requests_come_from_the_mirror_with_their_freshness(
    owner_client, make_key, simulator, sync_mirror, upstream_calls, settings
):
    created = make_key("3", label="Mirrored requests")
    url = reverse("console:key_detail", args=[created.id])
    assert "being mirrored from derouter for the first time" in owner_client.get(url).content.decode()

    simulator.chat(created.secret.reveal(), count=3)
    sync_mirror(created.id)
    before = upstream_calls()
    body = owner_client.get(url, {"limit": "20"}).content.decode()

    assert upstream_calls() == before  # no /usage-logs (nor any other) call for the list
    assert "3 requests · page 1 of 1" in body and "Requests as of" in body
    assert body.count('<td><span title="claude-sonnet-4-6-20250514">claude-sonnet-4-6</span></td>') == 3
    # Derouter down: the requests still show, from the mirror.
    simulator.inject("error", status=500, times=0)
    assert "3 requests · page 1 of 1" in owner_client.get(url).content.decode()
    simulator.clear_faults()

    settings.MIRROR_STALE_AFTER_SECONDS = 300
    past = timezone.now() - timedelta(minutes=10)
    SyncState.objects.filter(scope=created.id).update(last_synced_at=past)
    KeySnapshot.objects.filter(sub_key_id=created.id).update(refreshed_at=past)
    assert "This is stale: the worker has not synced them for 10 min" in owner_client.get(url).content.decode()


def test_a_key_whose_spend_has_not_moved_is_as_fresh_as_the_snapshot(owner_client, make_key, simulator, sync_mirror):
    created = make_key("3", label="Quiet since")
    simulator.add_usage(created.id, "0.01")
    sync_mirror(created.id)
    # The periodic sync skips a key whose spend has not moved; its rows are still complete.
    SyncState.objects.filter(scope=created.id).update(last_synced_at=timezone.now() - timedelta(hours=2))
    mirror_snapshot.refresh_snapshot()
    body = owner_client.get(reverse("console:key_detail", args=[created.id])).content.decode()
    assert "Requests as of" in body and "This is stale" not in body
