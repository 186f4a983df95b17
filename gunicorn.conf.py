"""gunicorn settings for the dashboard: `gunicorn config.wsgi` picks this file up from the repo root.

Sized from the machine, with timeouts that fit the upstream's, JSON logs and an access log
without query strings. Override with GUNICORN_BIND, WEB_CONCURRENCY and GUNICORN_THREADS.
"""

import math
import os
import shutil
import tempfile

# Threaded workers: a page spends much of its time waiting for derouter, and a thread that
# waits does not stop the worker from answering gunicorn's heartbeat, so a long streamed
# download is not killed mid-way the way a sync worker is.
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", (os.cpu_count() or 1) + 1))
threads = int(os.environ.get("GUNICORN_THREADS", 4))
bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")


def _upstream_worst_case_seconds():
    """The longest one upstream read may take: every try timing out, plus the retry backoff."""
    connect = float(os.environ.get("DEROUTER_CONNECT_TIMEOUT") or 3.05)
    read = float(os.environ.get("DEROUTER_READ_TIMEOUT") or 15)
    retries = int(os.environ.get("DEROUTER_GET_RETRIES") or 2)
    backoff = sum(0.2 * 2**attempt for attempt in range(retries))
    return (connect + read) * (1 + retries) + backoff


# A page makes at most two upstream calls in a row (the overview: balance, then keys).
timeout = math.ceil(2 * _upstream_worst_case_seconds()) + 10
graceful_timeout = 30
keepalive = 5
# Bound what a worker accumulates (fragmentation, caches) by recycling it now and then.
max_requests = 5000
max_requests_jitter = 500

# Prometheus: every worker writes its counts to files in this folder and /metrics adds them
# up. Unless given, it is a new folder per start; a given one is emptied at start, so a
# restart does not add up the previous run's counts.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="dashboard-prometheus-")


def on_starting(server):
    folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


# The path without the query string (%(U)s, not %(r)s): a query string could carry anything.
# No referrer either, for the same reason. The request id joins the line to the app's logs.
# An invitation's token is in its path (/invite/<token>/): both logs write it as [redacted].
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms request_id=%({x-request-id}o)s'
errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "filters": {"redact_secret_paths": {"()": "ops.log_redaction.RedactSecretPathsFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stdout",
            "filters": ["redact_secret_paths"],
        },
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "json",
            "stream": "ext://sys.stderr",
            "filters": ["redact_secret_paths"],
        },
    },
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}
