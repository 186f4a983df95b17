"""Console pages when derouter refuses the Account Key, fails or talks nonsense.

Pages that ask derouter (the balance, a key's current state before money moves) show an
error page; pages that read the mirror keep serving it, saying how old it is.
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from mirror.models import KeySnapshot

pytestmark = pytest.mark.django_db

# The overview's balance, as htmx asks for it once the page is shown.
LIVE_BALANCE = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "account-balance"}
MIRROR_PAGES = ["/dashboard/", "/dashboard/keys/", "/dashboard/logs/", "/dashboard/sync/"]


@pytest.mark.parametrize("url, headers", [("/dashboard/", LIVE_BALANCE), ("/dashboard/keys/new/", {})])
def test_rejected_account_key_tells_owners_to_check_the_setting(owner_client, settings, url, headers):
    settings.DEROUTER_ACCOUNT_KEY = "sk-ant-a-key-derouter-does-not-know"
    response = owner_client.get(url, **headers)
    assert response.status_code == 502
    assert "The Account Key is not accepted by derouter: check DEROUTER_ACCOUNT_KEY" in response.content.decode()


def test_rejected_account_key_is_not_explained_to_staff(staff_client, settings):
    settings.DEROUTER_ACCOUNT_KEY = "sk-ant-a-key-derouter-does-not-know"
    response = staff_client.get("/dashboard/", **LIVE_BALANCE)
    assert response.status_code == 502
    body = response.content.decode()
    assert "DEROUTER_ACCOUNT_KEY" not in body
    assert "Ask an owner" in body


def test_rejected_account_key_is_not_a_sign_in_problem(owner_client, settings):
    settings.DEROUTER_ACCOUNT_KEY = "sk-ant-a-key-derouter-does-not-know"
    owner_client.get("/dashboard/")
    assert "_auth_user_id" in owner_client.session


def test_upstream_server_error_is_a_503_page(owner_client, simulator):
    simulator.inject("error", status=500, times=0)
    response = owner_client.get("/dashboard/keys/new/")
    assert response.status_code == 503
    assert "derouter is not answering" in response.content.decode()
    assert response["Retry-After"]


def test_upstream_nonsense_is_a_502_page(owner_client, simulator):
    simulator.inject("nonjson", times=0)
    response = owner_client.get("/dashboard/keys/new/")
    assert response.status_code == 502


def test_upstream_timeout_is_a_503_page(owner_client, simulator, settings):
    settings.DEROUTER_READ_TIMEOUT = 0.3
    simulator.inject("slow", path="/balance", delay=1.0, times=0)
    response = owner_client.get("/dashboard/keys/new/")
    assert response.status_code == 503


def test_unreachable_upstream_is_a_503_page(owner_client, settings):
    settings.DEROUTER_API_BASE = "http://127.0.0.1:9"
    response = owner_client.get("/dashboard/keys/new/")
    assert response.status_code == 503


@pytest.mark.parametrize("url", MIRROR_PAGES)
@pytest.mark.parametrize("fault", ["error", "nonjson"])
def test_pages_that_read_the_mirror_keep_serving_it_with_its_age_when_derouter_fails(
    owner_client, make_key, simulator, url, fault
):
    make_key(label="Mirrored while derouter was up")
    simulator.inject(fault, status=500, times=0)

    response = owner_client.get(url)

    assert response.status_code == 200
    body = response.content.decode()
    assert "as of" in body.lower()
    if url == "/dashboard/keys/":
        assert "Mirrored while derouter was up" in body
    if url == "/dashboard/":
        live = owner_client.get(url, **LIVE_BALANCE)
        assert live.status_code == 200 and "derouter cannot be reached right now" in live.content.decode()


def test_before_the_first_sync_pages_say_it_is_running(owner_client, settings):
    settings.DEROUTER_API_BASE = "http://127.0.0.1:9"
    response = owner_client.get("/dashboard/keys/")
    assert response.status_code == 200
    assert "The first sync with derouter is running" in response.content.decode()


def test_a_stale_snapshot_says_so_plainly(owner_client, make_key, settings):
    make_key(label="Old news")
    settings.MIRROR_STALE_AFTER_SECONDS = 300
    KeySnapshot.objects.update(refreshed_at=timezone.now() - timedelta(minutes=10))
    body = owner_client.get("/dashboard/keys/").content.decode()
    assert "This is stale" in body and "10 min" in body
