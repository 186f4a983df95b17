"""Endpoints for operators: /healthz (the process is up), /readyz (it can serve), /metrics (Prometheus)."""

import logging
import secrets
import sqlite3
import sys

import redis
from django.conf import settings
from django.db import DatabaseError
from django.db.models import Max
from django.http import HttpResponse, HttpResponseNotFound, JsonResponse
from django.template import loader
from django.utils import timezone
from django.views import defaults
from django.views.decorators.http import require_GET
from huey.contrib.djhuey import HUEY
from prometheus_client import CONTENT_TYPE_LATEST

from mirror.models import KeySnapshot
from mirror.reads import get_oldest_usage_sync
from lib.metrics import exposition
from ops.database_outage import RETRY_AFTER_SECONDS, is_database_outage
from ops.readiness import run_checks

logger = logging.getLogger(__name__)


def _get_bearer_token(request):
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _get_scrape_time_gauges():
    """(name, help, value) of the gauges read at scrape time; a value of None is left out."""
    now = timezone.now()
    try:
        depth = HUEY.pending_count()
    except (OSError, sqlite3.Error, redis.RedisError):
        depth = None
    try:
        oldest_sync = get_oldest_usage_sync()
        newest_snapshot = KeySnapshot.objects.aggregate(newest=Max("refreshed_at"))["newest"]
    except DatabaseError:
        oldest_sync = newest_snapshot = None
    return [
        ("dashboard_queue_depth", "Tasks waiting in the Huey queue.", depth),
        ("dashboard_mirror_usage_sync_lag_seconds",
         "Seconds since the least recently synced usage scope (an active key, or the account) was last in step.",
         (now - oldest_sync).total_seconds() if oldest_sync else None),
        ("dashboard_mirror_snapshot_age_seconds", "Seconds since derouter's key list was last mirrored.",
         (now - newest_snapshot).total_seconds() if newest_snapshot else None),
    ]


@require_GET
def healthz(request):
    """The process is up and answering; nothing else is checked (that is /readyz)."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request):
    """503 naming the failed checks unless the database, cache, queue and derouter all answer."""
    results = run_checks()
    failed = [result.name for result in results if not result.ok]
    if failed:
        logger.warning("not ready: %s", ", ".join(f"{r.name} ({r.detail})" for r in results if not r.ok))
    body = {
        "status": "failing" if failed else "ok",
        "failed": failed,
        "checks": {r.name: {"ok": r.ok, "detail": r.detail, "ms": round(r.seconds * 1000, 1)} for r in results},
    }
    return JsonResponse(body, status=503 if failed else 200)


@require_GET
def metrics(request):
    """Prometheus metrics, only for a scraper holding METRICS_TOKEN; without a token set, absent."""
    expected = settings.METRICS_TOKEN
    if not expected:
        return HttpResponseNotFound("Not found", content_type="text/plain")
    if not secrets.compare_digest(_get_bearer_token(request).encode(), expected.encode()):
        response = HttpResponse("A bearer token is required.", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(exposition(_get_scrape_time_gauges), content_type=CONTENT_TYPE_LATEST)


def server_error(request):
    """The answer to an unhandled error: 503 with Retry-After when the database is down, else 500.

    Rendered without the request's context: the context processors read the database.
    """
    if is_database_outage(sys.exc_info()[1]):
        response = HttpResponse(loader.get_template("503.html").render(), status=503)
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return defaults.server_error(request)
