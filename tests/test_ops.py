"""Operating the dashboard: health, readiness, request ids in logs and headers, metrics, gunicorn settings."""

import json
import logging
import os
import runpy
from pathlib import Path

import pytest
from django.template import engines

from derouter import client as derouter_client
from ops.request_id import RequestIdFilter, current_request_id
from tests.simulator_helpers import create_key

ROOT = Path(__file__).resolve().parent.parent
METRICS_TOKEN = "metrics-token-for-tests"


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = METRICS_TOKEN
    return METRICS_TOKEN


class RecordCollector(logging.Handler):
    """Keep log records, stamped by the request-id filter like the console handler's."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.addFilter(RequestIdFilter())
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def log_records():
    collector = RecordCollector()
    logging.getLogger().addHandler(collector)
    yield collector.records
    logging.getLogger().removeHandler(collector)


# -- health and readiness -------------------------------------------------------------------


def test_healthz_answers_without_touching_the_database(client):
    response = client.get("/healthz")  # without the django_db mark, a query would fail the test
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ok_when_database_cache_queue_and_derouter_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["failed"] == []
    assert set(body["checks"]) == {"database", "cache", "queue", "derouter"}


@pytest.mark.django_db
def test_readyz_names_derouter_when_it_fails(client, simulator):
    simulator.inject("error", path="/balance", status=500, times=0)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["derouter"]


@pytest.mark.django_db
def test_readyz_gives_up_on_a_slow_derouter_long_before_it_answers(client, simulator):
    simulator.inject("slow", path="/balance", delay=5, times=1)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["derouter"]


@pytest.mark.django_db
def test_readyz_fails_when_derouter_is_down(client, settings):
    settings.DEROUTER_API_BASE = "http://127.0.0.1:9"  # the discard port: nothing listens there
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["derouter"]


# -- request ids and logs ------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_log_line_of_a_request_carries_the_id_sent_back_in_x_request_id(client, simulator, log_records):
    simulator.inject("error", path="/balance", status=500, times=0)
    response = client.get("/readyz")
    request_id = response["X-Request-ID"]
    lines = [record for record in log_records if record.name in ("ops.views", "django.request")]
    assert len(lines) == 2 and all(record.request_id == request_id for record in lines)


def test_a_request_id_from_the_proxy_is_kept_if_it_looks_like_one(client):
    assert client.get("/healthz", HTTP_X_REQUEST_ID="0f8c2d6e-1b7a-4c55-9a63-2f1d8e7b6c40")[
        "X-Request-ID"] == "0f8c2d6e-1b7a-4c55-9a63-2f1d8e7b6c40"


@pytest.mark.parametrize("given", ["sk-ant-abcdefghijklmnopqrstuvwxyz", "a b", "x" * 200, ""])
def test_any_other_request_id_is_replaced_so_it_never_reaches_a_log_or_header(client, given):
    request_id = client.get("/healthz", HTTP_X_REQUEST_ID=given)["X-Request-ID"]
    assert request_id != given and len(request_id) == 32


def test_log_lines_are_json_objects_with_the_request_id():
    console = next(handler for handler in logging.getLogger().handlers
                   if type(handler.formatter).__name__ == "JsonFormatter")
    record = logging.LogRecord("dashboard", logging.INFO, __file__, 1, "paid %s", ("10",), None)
    token = current_request_id.set("abc123")
    try:
        for log_filter in console.filters:
            log_filter.filter(record)
    finally:
        current_request_id.reset(token)
    line = json.loads(console.format(record))
    assert (line["message"], line["level"], line["logger"], line["request_id"]) == ("paid 10", "INFO", "dashboard",
                                                                                    "abc123")


# -- metrics -------------------------------------------------------------------------------------


def test_metrics_are_absent_without_a_token_configured(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404


@pytest.mark.parametrize("authorization", ["", "Bearer wrong", f"Basic {METRICS_TOKEN}"])
def test_metrics_refuse_a_scraper_without_the_token(client, metrics_token, authorization):
    response = client.get("/metrics", HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 401
    assert "dashboard_" not in response.content.decode()


@pytest.mark.django_db
def test_metrics_count_views_and_upstream_calls_by_endpoint_never_by_key(client, metrics_token, simulator):
    created = create_key(simulator, label="Metrics probe")
    client.get("/healthz")
    derouter_client.update_sub_key(created["id"], label="Metrics probe renamed")

    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_token}").content.decode()

    assert 'dashboard_request_seconds_count{method="GET",status="2xx",view="healthz"}' in text
    assert 'endpoint="/sub-keys/{id}"' in text and 'method="PUT"' in text
    assert "dashboard_queue_depth" in text
    assert created["id"] not in text and created["key"] not in text


@pytest.mark.django_db
def test_upstream_errors_are_counted_by_endpoint_and_error_class(client, metrics_token, simulator):
    simulator.inject("error", path="/balance", status=500, times=0)
    client.get("/readyz")
    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_token}").content.decode()
    assert 'dashboard_upstream_errors_total{endpoint="/balance",error="Unavailable",method="GET"}' in text


# -- the upstream session, templates, gunicorn ------------------------------------------------------


def test_upstream_calls_ignore_proxy_variables_unless_configured(monkeypatch):
    with monkeypatch.context() as patched:  # undone before the fixtures' own calls to the simulator
        patched.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # a proxy that would refuse every call
        patched.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
        assert derouter_client.get_balance().available >= 0


def test_templates_are_compiled_once_by_the_cached_loader():
    loaders = engines["django"].engine.template_loaders
    assert [type(loader).__module__ for loader in loaders] == ["django.template.loaders.cached"]


def test_gunicorn_settings_fit_the_upstream_timeouts_and_log_no_query_strings(monkeypatch):
    monkeypatch.setenv("DEROUTER_READ_TIMEOUT", "15")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", "/tmp/unused-by-this-test")
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert config["worker_class"] == "gthread"
    assert config["workers"] >= 2 and config["threads"] >= 2
    assert config["timeout"] > 2 * (3.05 + 15) * 3
    assert "%(U)s" in config["access_log_format"]
    for atom in ("%(r)s", "%(q)s", "%(f)s"):
        assert atom not in config["access_log_format"]
    assert os.environ["PROMETHEUS_MULTIPROC_DIR"] == "/tmp/unused-by-this-test"
