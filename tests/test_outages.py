"""Outages: Redis down leaves every page serving from the database; the database down is a 503, logged once."""

import re

import pytest
import requests
from django.test import override_settings

from branding.models import Branding
from tests.gunicorn_helpers import start_gunicorn
from tests.helpers import free_port

pytestmark = pytest.mark.django_db


def unreachable_redis_cache():
    """The production cache configuration, pointed at a port where nothing listens."""
    return {
        "default": {
            "BACKEND": "lib.cache_backends.ForgivingRedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


def test_production_settings_use_the_cache_that_survives_redis_going_down(monkeypatch):
    import importlib

    import config.settings

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/9")
    try:
        reloaded = importlib.reload(config.settings)
        assert reloaded.CACHES["default"]["BACKEND"] == "lib.cache_backends.ForgivingRedisCache"
        assert reloaded.CACHES["default"]["OPTIONS"]["socket_connect_timeout"] <= 1
    finally:
        monkeypatch.delenv("REDIS_URL")
        importlib.reload(config.settings)


def test_the_portal_serves_its_pages_while_redis_is_down(client, make_key):
    Branding(product_name="Acme AI").save()
    key = make_key("10", label="Cache Outage Customer")
    with override_settings(CACHES=unreachable_redis_cache()):
        assert "Acme AI" in client.get("/portal/login/").content.decode()
        response = client.post("/portal/login/", {"client_key": key.secret.reveal()})
        assert response.status_code == 302
        for url in ("/portal/", "/portal/logs/", "/portal/statements/", "/portal/requests/"):
            page = client.get(url)
            assert page.status_code == 200, url
            assert "Acme AI" in page.content.decode()


def test_the_console_serves_its_pages_while_redis_is_down(owner_client, make_key):
    key = make_key("10", label="Cache Outage Console")
    with override_settings(CACHES=unreachable_redis_cache()):
        for url in ("/dashboard/", "/dashboard/keys/", f"/dashboard/keys/{key.id}/", "/dashboard/logs/",
                    "/dashboard/topups/", "/dashboard/analytics/", "/dashboard/sync/", "/dashboard/branding/"):
            assert owner_client.get(url).status_code == 200, url


def test_saving_the_branding_while_redis_is_down_is_kept(owner_client):
    with override_settings(CACHES=unreachable_redis_cache()):
        response = owner_client.post("/dashboard/branding/", {"product_name": "Saved Offline"})
        assert response.status_code == 302
        assert Branding.load().product_name == "Saved Offline"


def test_a_database_outage_answers_503_with_retry_after_and_one_log_line_per_request(tmp_path):
    closed_port = free_port()
    server = start_gunicorn(tmp_path, DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port}/nothing_here")
    try:
        # A session cookie makes the console and the portal read the session from the database.
        signed_in = {"sessionid": "a" * 32, "portal_session": "b" * 32}
        paths = ["/portal/login/", "/portal/", "/dashboard/keys/", "/dashboard/", "/portal/login/"]
        for path in paths:
            response = requests.get(server.base_url + path, cookies=signed_in, timeout=20, allow_redirects=False)
            assert response.status_code == 503, (path, response.status_code)
            assert response.headers["Retry-After"].isdigit()
            assert "Temporarily unavailable" in response.text
            assert "Traceback" not in response.text
    finally:
        server.stop()
    logs = server.logs()
    assert "Traceback" not in logs
    outage_lines = [line for line in logs.splitlines() if "Database unavailable" in line]
    assert len(outage_lines) == len(paths), logs[-3000:]
    assert all(re.search(r'"level": "WARNING"', line) for line in outage_lines)


@pytest.fixture
def unreachable_redis_queue(monkeypatch):
    """The Huey queue as production runs it (Redis), at a port where nothing listens."""
    from huey.contrib.djhuey import HUEY
    from huey.storage import RedisStorage

    monkeypatch.setattr(HUEY, "immediate", False)
    monkeypatch.setattr(HUEY, "storage", RedisStorage("outage-test", url=f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=1"))
    return HUEY


def test_refresh_asked_for_while_the_queue_is_down_still_answers(owner_client, unreachable_redis_queue):
    response = owner_client.post("/dashboard/sync/refresh/")
    assert response.status_code == 302


def test_a_key_change_whose_webhook_cannot_be_queued_is_still_reported_done(
    owner_client, make_key, unreachable_redis_queue, django_capture_on_commit_callbacks
):
    from automation import webhooks
    from automation.models import DeliveryStatus, WebhookDelivery

    webhooks.create_endpoint("https://hooks.invalid/x", ["key.edited"])
    key = make_key("2", label="Queued Later")
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            f"/dashboard/keys/{key.id}/edit/", {"label": "Queued Later 2", "rpm_limit": 60, "display_multiplier": "1"}
        )
    assert response.status_code == 302
    # The delivery waits in the database for the next automation pass (evaluation.overdue_work).
    assert WebhookDelivery.objects.get().status == DeliveryStatus.PENDING


def test_a_cache_that_cannot_reach_redis_misses_and_says_so_once_per_interval(caplog):
    from lib.cache_backends import ForgivingRedisCache

    config = unreachable_redis_cache()["default"]
    cache = ForgivingRedisCache(config["LOCATION"], {"OPTIONS": config["OPTIONS"]})
    with caplog.at_level("WARNING", logger="lib.cache_backends"):
        assert cache.add("first-sync", True, 60) is False
        for _ in range(10):
            assert cache.get("branding:current") is None
            cache.set("branding:current", "x", 300)
            cache.delete("branding:current")
    warnings = [record for record in caplog.records if record.name == "lib.cache_backends"]
    assert len(warnings) == 1 and "serving from the database" in warnings[0].getMessage()
