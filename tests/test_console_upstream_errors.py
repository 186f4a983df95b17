"""Console pages when derouter refuses the Account Key, fails or talks nonsense."""

import pytest

pytestmark = pytest.mark.django_db

CONSOLE_PAGES = ["/dashboard/", "/dashboard/keys/", "/dashboard/logs/"]


@pytest.mark.parametrize("url", CONSOLE_PAGES)
def test_rejected_account_key_tells_owners_to_check_the_setting(owner_client, settings, url):
    settings.DEROUTER_ACCOUNT_KEY = "sk-ant-a-key-derouter-does-not-know"
    response = owner_client.get(url)
    assert response.status_code == 502
    assert "The Account Key is not accepted by derouter: check DEROUTER_ACCOUNT_KEY" in response.content.decode()


def test_rejected_account_key_is_not_explained_to_staff(staff_client, settings):
    settings.DEROUTER_ACCOUNT_KEY = "sk-ant-a-key-derouter-does-not-know"
    response = staff_client.get("/dashboard/keys/")
    assert response.status_code == 502
    body = response.content.decode()
    assert "DEROUTER_ACCOUNT_KEY" not in body
    assert "Ask an owner" in body


def test_rejected_account_key_is_not_a_sign_in_problem(owner_client, settings):
    settings.DEROUTER_ACCOUNT_KEY = "sk-ant-a-key-derouter-does-not-know"
    owner_client.get("/dashboard/")
    assert "_auth_user_id" in owner_client.session


@pytest.mark.parametrize("url", CONSOLE_PAGES)
def test_upstream_server_error_is_a_503_page(owner_client, simulator, url):
    simulator.inject("error", status=500, times=0)
    response = owner_client.get(url)
    assert response.status_code == 503
    assert "derouter is not answering" in response.content.decode()
    assert response["Retry-After"]


@pytest.mark.parametrize("url", CONSOLE_PAGES)
def test_upstream_nonsense_is_a_502_page(owner_client, simulator, url):
    simulator.inject("nonjson", times=0)
    response = owner_client.get(url)
    assert response.status_code == 502


def test_upstream_timeout_is_a_503_page(owner_client, simulator, settings):
    settings.DEROUTER_READ_TIMEOUT = 0.3
    simulator.inject("slow", path="/balance", delay=1.0, times=0)
    response = owner_client.get("/dashboard/")
    assert response.status_code == 503


def test_unreachable_upstream_is_a_503_page(owner_client, settings):
    settings.DEROUTER_API_BASE = "http://127.0.0.1:9"
    response = owner_client.get("/dashboard/keys/")
    assert response.status_code == 503
