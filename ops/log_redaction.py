"""Keep one-time secrets that travel in URL paths out of every log line.

An invitation link (``/invite/<token>/``) makes an owner or staff account for whoever
holds it, so its token must not be written to the access log, Django's request log or
gunicorn's error log. This filter rewrites the path wherever a log record carries it:
the message, its arguments (gunicorn's access log passes a mapping of "atoms") and the
request object the JSON formatter would print.

It imports nothing of Django's, so gunicorn's own logging can use it before Django starts.
"""

import logging
import re

REDACTED = "[redacted]"
SECRET_PATH_SEGMENT = re.compile(r"(/invite/)[^/?#\s\"'>]+")


def redact_path(text):
    """``text`` with the token of every invitation path replaced by ``[redacted]``."""
    return SECRET_PATH_SEGMENT.sub(rf"\g<1>{REDACTED}", text)


def _redacted(value):
    return redact_path(value) if isinstance(value, str) else value


class RedactSecretPathsFilter(logging.Filter):
    """Rewrite invitation tokens out of a record before any handler formats it."""

    def filter(self, record):
        if isinstance(record.msg, str):
            record.msg = redact_path(record.msg)
        if isinstance(record.args, dict):
            for name, value in record.args.items():
                record.args[name] = _redacted(value)
        elif isinstance(record.args, tuple):
            record.args = tuple(_redacted(value) for value in record.args)
        request = getattr(record, "request", None)
        if request is not None and not isinstance(request, str):
            shown = repr(request)
            if redact_path(shown) != shown:
                record.request = redact_path(shown)
        return True
