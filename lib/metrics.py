"""Prometheus metrics of the dashboard, and the /metrics exposition.

Under gunicorn with several workers, each worker counts on its own; with
PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets it), prometheus-client writes
the counts to files there and /metrics adds up every worker's. Queue depth and sync
lag are read when /metrics is scraped, so they need no cross-process state.
"""

import os
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

REQUEST_SECONDS = Histogram(
    "dashboard_request_seconds", "Time to answer a request, by view (URL name), method and status class.",
    ["view", "method", "status"], buckets=LATENCY_BUCKETS,
)
UPSTREAM_SECONDS = Histogram(
    "dashboard_upstream_request_seconds", "Time of one call to derouter, by endpoint (ids replaced).",
    ["method", "endpoint"], buckets=LATENCY_BUCKETS,
)
UPSTREAM_ERRORS = Counter(
    "dashboard_upstream_errors_total", "Calls to derouter that failed, by endpoint and error class.",
    ["method", "endpoint", "error"],
)


def observe_upstream_call(method, endpoint, started, error=None):
    """Record one derouter call that began at time.perf_counter() value `started`."""
    UPSTREAM_SECONDS.labels(method, endpoint).observe(time.perf_counter() - started)
    if error is not None:
        UPSTREAM_ERRORS.labels(method, endpoint, error).inc()


class ScrapeTimeGauges:
    """Gauges computed when /metrics is read: the work queue's depth and the mirror's sync lag."""

    def __init__(self, read_gauges):
        self._read_gauges = read_gauges

    def collect(self):
        for name, documentation, value in self._read_gauges():
            if value is not None:
                yield GaugeMetricFamily(name, documentation, value=value)


def exposition(read_gauges):
    """The text of /metrics: every worker's counts (or this process's) plus the scrape-time gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        counted = CollectorRegistry()
        multiprocess.MultiProcessCollector(counted)
    else:
        counted = REGISTRY
    gauges = CollectorRegistry()
    gauges.register(ScrapeTimeGauges(read_gauges))
    return generate_latest(counted) + generate_latest(gauges)


class RequestMetricsMiddleware:
    """Time each request under its view's URL name (never its path, which may carry ids)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match is not None else "unmatched"
        REQUEST_SECONDS.labels(view, request.method, f"{response.status_code // 100}xx").observe(
            time.perf_counter() - started
        )
        return response
