"""Refresh updates the page by itself: the freshness line polls until the worker has refreshed, then reloads."""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse

from mirror.forms import MAX_POLLS
from mirror.reads import get_freshness

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
POLL_URL = reverse("console:mirror_refresh_poll")


def _poll_url(body):
    found = re.search(r'data-hx-get="([^"]+)"', body)
    return unescape(found.group(1)) if found else None


@pytest.fixture
def mirrored(make_key, sync_mirror):
    make_key("1", label="Fresh Co")
    sync_mirror()
    assert get_freshness().as_of is not None


def test_pressing_refresh_starts_polling_from_the_snapshot_the_page_showed(owner_client, mirrored):
    body = owner_client.post(reverse("console:mirror_refresh"), {"next": "/dashboard/keys/"}, headers=HTMX).content.decode()

    url = _poll_url(body)
    assert url and url.startswith(POLL_URL) and "tries=1" in url
    assert 'data-hx-trigger="load delay:2s"' in body
    assert "Refreshing: this page updates as soon as the worker has read the keys." in body


def test_the_page_reloads_once_the_worker_has_refreshed(owner_client, mirrored):
    before = get_freshness().as_of - timedelta(seconds=5)

    response = owner_client.get(POLL_URL, {"since": before.isoformat(), "tries": 3}, headers=HTMX)

    assert response.status_code == 200 and response["HX-Refresh"] == "true"
    assert _poll_url(response.content.decode()) is None


def test_until_then_the_line_asks_again(owner_client, mirrored):
    since = get_freshness().as_of

    response = owner_client.get(POLL_URL, {"since": since.isoformat(), "tries": 3}, headers=HTMX)

    assert "HX-Refresh" not in response
    assert "tries=4" in _poll_url(response.content.decode())


def test_polling_stops_after_its_last_try_and_says_so(owner_client, mirrored):
    since = get_freshness().as_of

    body = owner_client.get(POLL_URL, {"since": since.isoformat(), "tries": MAX_POLLS}, headers=HTMX).content.decode()

    assert _poll_url(body) is None
    assert "The worker has not finished the refresh yet" in body


@pytest.mark.parametrize("query", [{"since": "not-a-time"}, {"tries": "-1"}, {"tries": str(MAX_POLLS + 1)}])
def test_a_bad_poll_query_is_a_400_without_polling(owner_client, query):
    response = owner_client.get(POLL_URL, query, headers=HTMX)
    assert response.status_code == 400 and _poll_url(response.content.decode()) is None


def test_polling_needs_a_console_user(client):
    assert client.get(POLL_URL).status_code in (302, 403)
