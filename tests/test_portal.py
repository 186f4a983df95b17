"""The client portal against the live simulator: sign-in, sessions, pages, faults and separation."""

import csv
import io
import time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
import requests
from django.contrib.sessions.models import Session
from django.http import StreamingHttpResponse
from django.test import Client

from derouter import client as derouter_client
from lib.csv_export import safe_cell
from lib.money import duration, money, usd_cost
from portal import views as portal_views
from portal.forms import INVALID_KEY_MESSAGE
from mirror import snapshot as mirror_snapshot
from accounts.portal_sessions import SESSION_KEY, SESSION_LAST_SEEN_AT, SESSION_SIGNED_IN_AT
from tests.helpers import hang_derouter

pytestmark = pytest.mark.django_db

LOGIN_URL = "/portal/login/"
HOME_URL = "/portal/"
LOGS_URL = "/portal/logs/"
CSV_URL = "/portal/logs/export.csv"
REVEAL_URL = "/portal/reveal/"
LIVE_FIGURES = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "portal-figures"}


def _sign_in(client, key):
    return client.post(LOGIN_URL, {"client_key": key})


def _signed_in_client(key):
    browser = Client()
    response = _sign_in(browser, key)
    assert response.status_code == 302 and response["Location"] == HOME_URL
    return browser


def _body(response):
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def _fault_count(simulator):
    return len(requests.get(f"{simulator.base_url}/_sim/faults", timeout=5).json()["faults"])


# The simulator's account balance is shared by the whole test session: keep
# budgets small and hand them back.
BUDGET = "1"


@pytest.fixture
def key(make_key):
    created = make_key(BUDGET, label="Acme Corp")
    yield created
    try:
        derouter_client.delete_sub_key(created.id)
    except derouter_client.NotFound:
        pass


@pytest.fixture
def portal(key):
    """A test client signed in to the portal with ``key``."""
    return _signed_in_client(key.secret.reveal())


# ---------------------------------------------------------------- sign-in


def test_sign_in_rotates_the_session_and_keeps_the_key_server_side(client, key):
    client.get(LOGIN_URL)
    client.session.save()
    before = client.session.session_key
    response = _sign_in(client, key.secret.reveal())
    assert response.status_code == 302
    assert response["Location"] == HOME_URL
    after = client.session.session_key
    assert after != before
    assert SESSION_KEY in client.session
    for morsel in client.cookies.values():
        assert key.secret.reveal() not in morsel.value


def test_login_page_asks_for_the_key_in_a_password_input(client):
    response = client.get(LOGIN_URL)
    body = response.content.decode()
    assert response.status_code == 200
    assert 'type="password"' in body
    assert 'autocomplete="off"' in body
    assert response["Cache-Control"] == "no-store"


def test_wrong_malformed_and_deleted_keys_get_the_same_answer(client, make_key):
    deleted = make_key(BUDGET, label="Gone")
    derouter_client.delete_sub_key(deleted.id)
    attempts = {
        "wrong": "sk-ant-" + "x" * 40,
        "malformed": "not a key",
        "deleted": deleted.secret.reveal(),
        "too long": "sk-" + "a" * 5000,
    }
    answers = {}
    for name, value in attempts.items():
        response = _sign_in(client, value)
        body = response.content.decode()
        assert value not in body, name
        answers[name] = (response.status_code, body.count(str(INVALID_KEY_MESSAGE)))
        assert SESSION_KEY not in client.session
    assert set(answers.values()) == {(400, 1)}


def test_failed_sign_ins_are_throttled_without_asking_the_upstream(client, key, settings, simulator):
    settings.PORTAL_LOGIN_ATTEMPTS_LIMIT = 3
    for _ in range(3):
        assert _sign_in(client, "sk-ant-" + "y" * 40).status_code == 400
    # An armed one-shot fault would be used up by any upstream call.
    simulator.inject("error", path="/sub-key/balance", status=500, times=1)
    response = _sign_in(client, key.secret.reveal())
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "Too many failed sign-ins" in response.content.decode()
    assert SESSION_KEY not in client.session
    assert _fault_count(simulator) == 1


def test_throttle_counts_per_client_address(key, settings):
    settings.PORTAL_LOGIN_ATTEMPTS_LIMIT = 2
    attacker = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(2):
        _sign_in(attacker, "sk-ant-" + "z" * 40)
    assert _sign_in(attacker, key.secret.reveal()).status_code == 429
    customer = Client(REMOTE_ADDR="10.0.0.2")
    assert _sign_in(customer, key.secret.reveal()).status_code == 302


def test_upstream_down_during_sign_in_is_503_and_not_a_failure(client, key, simulator):
    simulator.inject("error", path="/sub-key/balance", status=500, times=0)
    response = _sign_in(client, key.secret.reveal())
    assert response.status_code == 503
    assert "the service is not answering" in response.content.decode()
    assert SESSION_KEY not in client.session


def test_sign_in_form_needs_the_csrf_token(key):
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(LOGIN_URL, {"client_key": key.secret.reveal()})
    assert response.status_code == 403
    assert SESSION_KEY not in strict.session


def test_signed_in_customer_visiting_login_goes_home(portal):
    response = portal.get(LOGIN_URL)
    assert response.status_code == 302 and response["Location"] == HOME_URL


# ---------------------------------------------------------------- home


def test_home_shows_exactly_the_simulators_numbers_in_display_units(simulator, make_key):
    created = make_key(BUDGET, label="Marked Up Ltd")
    derouter_client.update_sub_key(created.id, display_multiplier=Decimal("4"))
    simulator.chat(created.secret.reveal(), count=3)
    expected = derouter_client.get_client_balance(created.secret.reveal())
    assert expected.budget == Decimal("4")

    response = _signed_in_client(created.secret.reveal()).get(HOME_URL, **LIVE_FIGURES)
    body = response.content.decode()
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert "Figures as your provider's service reports them now" in body
    assert f'data-testid="budget">{money(expected.budget)}<' in body
    assert f'data-testid="spent">{money(expected.spent)}<' in body
    assert f'data-testid="remaining">{money(expected.remaining)}<' in body
    assert f'data-testid="rpm-limit">{expected.rpm_limit}<' in body
    assert f'data-testid="concurrent-limit">{expected.concurrent_limit}<' in body
    assert "<progress" in body and "style=" not in body
    for summary in (expected.today, expected.week, expected.month, expected.total):
        assert summary.requests == 3
        row = (
            f'<td class="num" data-label="Requests">{summary.requests:,}</td>\n'
            f'        <td class="num" data-label="Input tokens">{summary.input_tokens:,}</td>\n'
            f'        <td class="num" data-label="Output tokens">{summary.output_tokens:,}</td>\n'
            f'        <td class="num" data-label="Total tokens">{summary.total_tokens:,}</td>\n'
            f'        <td class="num" data-label="Cost">{money(summary.cost)}</td>'
        )
        assert row in body


def test_home_answers_from_the_mirror_in_display_units_with_its_freshness(simulator, make_key, sync_mirror):
    created = make_key(BUDGET, label="Mirrored Ltd")
    derouter_client.update_sub_key(created.id, display_multiplier=Decimal("4"))
    simulator.chat(created.secret.reveal(), count=3)
    sync_mirror(created.id)
    expected = derouter_client.get_client_balance(created.secret.reveal())
    browser = _signed_in_client(created.secret.reveal())

    response = browser.get(HOME_URL)

    body = response.content.decode()
    assert "Mirrored Ltd" in body and "Figures as of" in body
    assert f'data-testid="budget">{money(expected.budget)}<' in body
    assert f'data-testid="spent">{money(expected.spent)}<' in body
    assert f'data-testid="remaining">{money(expected.remaining)}<' in body
    assert f'data-hx-get="{HOME_URL}" data-hx-trigger="load"' in body
    for summary in (expected.today, expected.week, expected.month, expected.total):
        assert f'<td class="num" data-label="Cost">{money(summary.cost)}</td>' in body
        assert f'<td class="num" data-label="Requests">{summary.requests:,}</td>' in body


def test_home_of_a_key_not_mirrored_yet_reads_derouter(simulator):
    created = derouter_client.create_sub_key(Decimal(BUDGET), label="Brand New Ltd")
    browser = _signed_in_client(created.secret.reveal())

    body = browser.get(HOME_URL).content.decode()

    assert "Brand New Ltd" in body
    assert "Figures as your provider's service reports them now" in body
    assert 'data-hx-trigger="load"' not in body


def test_home_answers_while_derouter_hangs(simulator, make_key):
    created = make_key(BUDGET, label="Patient Ltd")
    browser = _signed_in_client(created.secret.reveal())
    hang_derouter(simulator)

    response = browser.get(HOME_URL)

    # Had the page waited for derouter, it would have given up (the read timeout) with a 503.
    assert response.status_code == 200
    assert "Patient Ltd" in response.content.decode()


def test_home_live_figures_say_when_derouter_cannot_answer(simulator, portal):
    simulator.inject("error", path="/sub-key/", status=500, times=0)
    response = portal.get(HOME_URL, **LIVE_FIGURES)
    assert response.status_code == 200
    assert "The service cannot be reached right now: figures as of" in response.content.decode()
    assert SESSION_KEY in portal.session


def test_home_quick_start_masks_the_key(portal, key, settings):
    body = portal.get(HOME_URL).content.decode()
    secret = key.secret.reveal()
    assert secret not in body
    assert f"{secret[:7]}…{secret[-4:]}" in body
    assert settings.DEROUTER_INFERENCE_BASE in body
    assert "from openai import OpenAI" in body and "curl " in body


def test_reveal_gives_the_full_key_only_on_post(portal, key):
    secret = key.secret.reveal()
    assert portal.get(REVEAL_URL)["Location"] == HOME_URL
    page = portal.post(REVEAL_URL)
    assert page.status_code == 200 and secret in page.content.decode()
    assert page["Cache-Control"] == "no-store"
    fragment = portal.post(REVEAL_URL, HTTP_HX_REQUEST="true")
    body = fragment.content.decode()
    assert body.lstrip().startswith('<section id="quick-start"') and secret in body
    assert "<html" not in body


def test_reveal_needs_the_csrf_token(key):
    strict = Client(enforce_csrf_checks=True)
    strict.get(LOGIN_URL)
    token = strict.cookies["csrftoken"].value
    assert strict.post(LOGIN_URL, {"client_key": key.secret.reveal(), "csrfmiddlewaretoken": token}).status_code == 302
    assert strict.post(REVEAL_URL).status_code == 403


def test_no_page_but_the_reveal_carries_the_full_key(simulator, portal, key):
    simulator.chat(key.secret.reveal())
    secret = key.secret.reveal()
    for url in (HOME_URL, LOGS_URL, LOGS_URL + "?page=2&limit=50", CSV_URL):
        response = portal.get(url)
        assert response.status_code == 200, url
        assert secret not in _body(response), url
        assert secret not in response.get("Location", "")


# ---------------------------------------------------------------- two customers


def test_two_customers_never_see_each_others_data(simulator, make_key):
    alpha = make_key(BUDGET, label="Alpha Widgets")
    beta = make_key(BUDGET, label="Beta Gadgets")
    simulator.chat(alpha.secret.reveal(), count=2)
    simulator.chat(beta.secret.reveal(), count=1)
    alpha_ids = {log.request_id for log in derouter_client.get_client_usage_logs(alpha.secret.reveal()).logs}
    beta_ids = {log.request_id for log in derouter_client.get_client_usage_logs(beta.secret.reveal()).logs}

    alpha_portal = _signed_in_client(alpha.secret.reveal())
    beta_portal = _signed_in_client(beta.secret.reveal())
    for portal, own_label, other_label, own_ids, other_ids in (
        (alpha_portal, "Alpha Widgets", "Beta Gadgets", alpha_ids, beta_ids),
        (beta_portal, "Beta Gadgets", "Alpha Widgets", beta_ids, alpha_ids),
    ):
        home = portal.get(HOME_URL).content.decode()
        logs = portal.get(LOGS_URL).content.decode()
        exported = _body(portal.get(CSV_URL))
        assert own_label in home and other_label not in home
        assert all(request_id in logs and request_id in exported for request_id in own_ids)
        assert not any(request_id in logs or request_id in exported for request_id in other_ids)


# ---------------------------------------------------------------- logs


@pytest.fixture(scope="module")
def busy_key(simulator):
    """A key with 25 requests behind it, shared by the read-only log tests."""
    created = derouter_client.create_sub_key(Decimal(BUDGET), label="Busy Bee")
    simulator.chat(created.secret.reveal(), count=25)
    yield created
    derouter_client.delete_sub_key(created.id)


def test_logs_show_every_field_and_page(busy_key):
    portal = _signed_in_client(busy_key.secret.reveal())
    newest = derouter_client.get_client_usage_logs(busy_key.secret.reveal(), page=1, limit=20)
    first = portal.get(LOGS_URL)
    body = first.content.decode()
    assert first.status_code == 200
    assert body.count("<time ") == 20
    assert "Page 1 of 2" in body
    assert "times in <strong" in body and ">UTC<" in body
    log = newest.logs[0]
    assert log.request_id in body and log.model in body
    assert duration(log.duration_ms) in body and usd_cost(log.cost) in body
    for header in ("Input", "Output", "Cache read / write", "Cost", "Duration", "Request ID"):
        assert f">{header}</th>" in body
    second = portal.get(LOGS_URL + "?page=2&limit=20").content.decode()
    assert second.count("<time ") == 5
    everything = portal.get(LOGS_URL + "?limit=50").content.decode()
    assert everything.count("<time ") == 25


@pytest.mark.parametrize("query", ["page=abc", "page=0", "page=-1", "limit=1000", "limit=abc", "limit=0", "page=99999", "page=1e9&limit=-5"])
def test_bad_page_and_limit_values_are_corrected_never_a_500(busy_key, query):
    portal = _signed_in_client(busy_key.secret.reveal())
    response = portal.get(f"{LOGS_URL}?{query}")
    assert response.status_code == 200
    assert "Rows per page" in response.content.decode()


def test_page_past_the_end_offers_the_first_page(busy_key):
    portal = _signed_in_client(busy_key.secret.reveal())
    body = portal.get(LOGS_URL + "?page=99999").content.decode()
    assert "There is no page 99999" in body


def test_htmx_paging_gets_only_the_logs_fragment(busy_key):
    portal = _signed_in_client(busy_key.secret.reveal())
    response = portal.get(LOGS_URL + "?page=2", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section id="logs"')
    assert "<html" not in body and body.count("<time ") == 5
    assert 'data-hx-push-url="true"' in body
    assert "HX-Request" in response["Vary"]
    assert response["Cache-Control"] == "no-store"


def test_csv_export_streams_every_row_page_by_page(busy_key, monkeypatch):
    monkeypatch.setattr(portal_views, "CSV_PAGE_SIZE", 10)
    portal = _signed_in_client(busy_key.secret.reveal())
    response = portal.get(CSV_URL)
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="usage-')
    rows = list(csv.reader(io.StringIO(_body(response))))
    assert rows[0] == list(portal_views.CSV_HEADER)
    expected = derouter_client.get_client_usage_logs(busy_key.secret.reveal(), page=1, limit=100).logs
    assert [row[1] for row in rows[1:]] == [log.request_id for log in expected]
    assert [Decimal(row[7]) for row in rows[1:]] == [log.cost for log in expected]


def test_csv_cells_cannot_start_a_formula():
    assert safe_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert safe_cell("claude-sonnet-4-6") == "claude-sonnet-4-6"


def test_time_zone_choice_changes_the_shown_times(busy_key):
    portal = _signed_in_client(busy_key.secret.reveal())
    page = portal.get(LOGS_URL).content.decode()
    assert "data-detect-time-zone" in page
    log = derouter_client.get_client_usage_logs(busy_key.secret.reveal(), page=1, limit=1).logs[0]
    response = portal.post("/portal/timezone/", {"tz": "Asia/Kolkata"})
    assert response.status_code == 302 and response["Location"] == LOGS_URL
    body = portal.get(LOGS_URL).content.decode()
    assert ">Asia/Kolkata<" in body
    assert "data-detect-time-zone" not in body
    assert log.created_at.astimezone(ZoneInfo("Asia/Kolkata")).strftime("%Y-%m-%d %H:%M:%S") in body
    exported = _body(portal.get(CSV_URL))
    assert "+05:30" in exported


def test_unknown_time_zone_is_refused(portal):
    response = portal.post("/portal/timezone/", {"tz": "Mars/Olympus_Mons"})
    assert response.status_code == 400
    assert ">UTC<" in portal.get(LOGS_URL).content.decode()


# ---------------------------------------------------------------- session lifetime


def _age_session(portal, signed_in_ago=0, last_seen_ago=0):
    session = portal.session
    now = int(time.time())
    session[SESSION_SIGNED_IN_AT] = now - signed_in_ago
    session[SESSION_LAST_SEEN_AT] = now - last_seen_ago
    session.save()


def test_idle_session_ends_with_a_message(portal, settings):
    settings.PORTAL_IDLE_TIMEOUT = 60
    _age_session(portal, signed_in_ago=120, last_seen_ago=61)
    response = portal.get(HOME_URL, follow=True)
    assert response.redirect_chain[-1][0] == LOGIN_URL
    assert "period of inactivity" in response.content.decode()
    assert SESSION_KEY not in portal.session


def test_activity_keeps_an_idle_session_alive(portal, settings):
    settings.PORTAL_IDLE_TIMEOUT = 60
    _age_session(portal, signed_in_ago=120, last_seen_ago=59)
    assert portal.get(HOME_URL).status_code == 200
    assert portal.session[SESSION_LAST_SEEN_AT] >= int(time.time()) - 1


def test_visits_within_a_minute_do_not_write_the_session(portal, settings):
    settings.PORTAL_IDLE_TIMEOUT = 1800
    _age_session(portal, signed_in_ago=120, last_seen_ago=30)
    stored = Session.objects.get(session_key=portal.session.session_key).session_data
    assert portal.get(HOME_URL).status_code == 200
    assert Session.objects.get(session_key=portal.session.session_key).session_data == stored
    _age_session(portal, signed_in_ago=120, last_seen_ago=60)
    assert portal.get(HOME_URL).status_code == 200
    assert portal.session[SESSION_LAST_SEEN_AT] >= int(time.time()) - 1


def test_session_ends_after_its_absolute_lifetime_even_when_active(portal, settings):
    settings.PORTAL_ABSOLUTE_TIMEOUT = 3600
    _age_session(portal, signed_in_ago=3601, last_seen_ago=1)
    response = portal.get(LOGS_URL, follow=True)
    assert response.redirect_chain[-1][0] == LOGIN_URL
    assert "Your session has ended" in response.content.decode()
    assert SESSION_KEY not in portal.session


def test_expired_session_on_an_htmx_request_redirects_the_whole_page(portal, settings):
    settings.PORTAL_IDLE_TIMEOUT = 60
    _age_session(portal, last_seen_ago=61)
    response = portal.get(LOGS_URL + "?page=2", HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == LOGIN_URL


def test_sign_out_flushes_the_session_on_the_server(portal):
    session_key = portal.session.session_key
    assert portal.get("/portal/logout/").status_code == 405
    response = portal.post("/portal/logout/", follow=True)
    assert response.redirect_chain == [(LOGIN_URL, 302)]
    assert "You are signed out." in response.content.decode()
    assert not Session.objects.filter(session_key=session_key).exists()
    assert portal.get(HOME_URL)["Location"] == LOGIN_URL


def test_deleted_key_signs_the_customer_out_when_the_live_figures_load(portal, key):
    derouter_client.delete_sub_key(key.id)
    response = portal.get(HOME_URL, **LIVE_FIGURES)
    assert response["HX-Redirect"] == LOGIN_URL
    assert SESSION_KEY not in portal.session


def test_deleted_key_signs_the_customer_out_on_the_next_page_once_mirrored(portal, key):
    derouter_client.delete_sub_key(key.id)
    mirror_snapshot.refresh_snapshot()
    response = portal.get(HOME_URL, follow=True)
    assert response.redirect_chain[-1][0] == LOGIN_URL
    assert "This key is no longer valid" in response.content.decode()
    assert SESSION_KEY not in portal.session


# ---------------------------------------------------------------- upstream faults


@pytest.mark.parametrize("url", [LOGS_URL, CSV_URL])
def test_upstream_error_is_503_and_the_session_is_kept(portal, simulator, url):
    simulator.inject("error", path="/sub-key/", status=500, times=0)
    response = portal.get(url)
    assert response.status_code == 503
    assert "The service is not answering" in response.content.decode()
    assert response["Retry-After"]
    simulator.clear_faults()
    assert SESSION_KEY in portal.session
    assert portal.get(url).status_code == 200


def test_slow_upstream_is_503_and_the_session_is_kept(portal, simulator, settings):
    settings.DEROUTER_READ_TIMEOUT = 0.3
    simulator.inject("slow", path="/sub-key/", delay=1.0, times=1)
    response = portal.get(LOGS_URL)
    assert response.status_code == 503
    assert "You are still signed in" in response.content.decode()
    assert SESSION_KEY in portal.session


def test_htmx_error_gets_a_fragment(portal, simulator):
    simulator.inject("error", path="/sub-key/usage-logs", status=500, times=0)
    response = portal.get(LOGS_URL, HTTP_HX_REQUEST="true")
    assert response.status_code == 503
    assert "<html" not in response.content.decode()


# ---------------------------------------------------------------- portal and console apart


def test_console_user_is_not_a_portal_user(owner_client):
    response = owner_client.get(HOME_URL)
    assert response.status_code == 302 and response["Location"] == LOGIN_URL
    assert owner_client.get(LOGIN_URL).status_code == 200


def test_portal_session_cannot_open_the_console(portal):
    response = portal.get("/dashboard/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert "_auth_user_id" not in portal.session


def test_anonymous_visitor_is_sent_to_sign_in(client):
    for url in (HOME_URL, LOGS_URL, CSV_URL):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == LOGIN_URL
    assert client.post(REVEAL_URL)["Location"] == LOGIN_URL


# Bug: the portal offered "localtime" (the server's own zone) and "Factory" as time zones.
@pytest.mark.django_db
def test_portal_refuses_server_local_time_zone(make_key):
    created = make_key(label="QA time zone")
    try:
        portal = Client()
        assert portal.post("/portal/login/", {"client_key": created.secret.reveal()}).status_code == 302
        body = portal.get("/portal/logs/").content.decode()
        assert 'value="localtime"' not in body and 'value="Factory"' not in body
        assert portal.post("/portal/timezone/", {"tz": "localtime"}).status_code == 400
        assert portal.post("/portal/timezone/", {"tz": "Europe/Berlin"}).status_code == 302
    finally:
        derouter_client.delete_sub_key(created.id)
