"""The checks of /readyz: database, cache, work queue and derouter, each bounded by a short timeout."""

import socket
import sqlite3
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connections
from huey.contrib.djhuey import HUEY

from derouter.client import DerouterError, get_balance

# Each check gives up after this long; four checks in a row stay under two seconds.
CHECK_TIMEOUT_SECONDS = 0.45
PROBE_CACHE_KEY = "ops:readyz-probe"


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float


def run_checks():
    """Run every check in order and return their results; a check that needs a failed one is skipped."""
    results = []
    database = _timed("database", _check_database)
    results.append(database)
    cache_uses_database = not settings.REDIS_URL
    if cache_uses_database and not database.ok:
        results.append(CheckResult("cache", False, "skipped: the cache lives in the database", 0.0))
    else:
        results.append(_timed("cache", _check_cache))
    results.append(_timed("queue", _check_queue))
    results.append(_timed("derouter", _check_derouter))
    return results


def _timed(name, check):
    started = time.perf_counter()
    try:
        detail = check()
        ok = True
    except (DatabaseError, sqlite3.Error, redis.RedisError, DerouterError, OSError) as error:
        detail = _describe(error)
        ok = False
    return CheckResult(name, ok, detail, time.perf_counter() - started)


def _describe(error):
    """A short reason without the error's own text, which could quote a connection string."""
    if isinstance(error, DerouterError):
        return error.message
    return type(error).__name__


def _check_database():
    """Open a fresh connection and run SELECT 1, giving up quickly if the server does not answer."""
    connection = connections["default"]
    if connection.vendor == "postgresql":
        params = connection.get_connection_params()
        host = params.get("host") or ""
        if host and not host.startswith("/"):
            # libpq waits at least 2 s to connect; an unreachable server is found out sooner this way.
            socket.create_connection((host, int(params.get("port") or 5432)), CHECK_TIMEOUT_SECONDS).close()
        params["connect_timeout"] = 2
        params["options"] = f"-c statement_timeout={int(CHECK_TIMEOUT_SECONDS * 1000)}"
        with connection.Database.connect(**params) as probe:
            probe.execute("SELECT 1")
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    return "ok"


def _check_cache():
    if settings.REDIS_URL:
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
                                      socket_timeout=CHECK_TIMEOUT_SECONDS)
        try:
            client.ping()
        finally:
            client.close()
    else:
        cache.set(PROBE_CACHE_KEY, "1", 10)
    return "ok"


def _check_queue():
    """The queue answers: its pending count is read (Redis or the SQLite file)."""
    if settings.REDIS_URL:
        _check_cache()  # the queue shares the Redis server: fail fast here rather than hang in Huey
    return f"{HUEY.pending_count()} pending"


def _check_derouter():
    get_balance(probe_timeout=CHECK_TIMEOUT_SECONDS)
    return "ok"
