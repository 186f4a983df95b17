"""A database that cannot be reached is an outage to wait out, not a bug to trace.

Every request during an outage fails the same way, so a traceback per request buries the
log: the failing request is answered 503 with Retry-After (``ops.views.server_error``)
and logged as one line naming the path and the database's own first line of complaint.
"""

import logging

from django.db import InterfaceError, OperationalError

RETRY_AFTER_SECONDS = 30


def is_database_outage(error):
    """True for the errors a database gives when it is down, unreachable or refusing connections."""
    return isinstance(error, (OperationalError, InterfaceError))


class DatabaseOutageLogFilter(logging.Filter):
    """Turn the traceback Django logs for a request that met a database outage into one line."""

    def filter(self, record):
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and is_database_outage(error):
            path = getattr(getattr(record, "request", None), "path", "?")
            first_line = (str(error).strip().splitlines() or [""])[0]
            record.msg = "Database unavailable, answered 503: %s (%s: %s)"
            record.args = (path, type(error).__name__, first_line)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
