"""A request id for every request: in a context variable for log lines, and in X-Request-ID."""

import logging
import re
import uuid
from contextvars import ContextVar

from django.core.signals import request_finished
from django.dispatch import receiver

REQUEST_ID_HEADER = "X-Request-ID"
# An id from the proxy in front is kept only if it looks like one (a UUID or hex, as nginx's
# $request_id): anything else, a pasted key included, never reaches a log line or a header.
TRUSTED_REQUEST_ID = re.compile(r"[0-9a-fA-F-]{8,64}")
NO_REQUEST = "-"

current_request_id = ContextVar("request_id", default=NO_REQUEST)


class RequestIdMiddleware:
    """Give each request an id, echo it in the response and put it on every log line meanwhile.

    The id stays set until the response is closed, not just until this middleware returns:
    Django logs a failed request's status after the middleware, and a streamed body (a CSV
    export) is produced after it too.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = given if TRUSTED_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        request.request_id = request_id
        current_request_id.set(request_id)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response


@receiver(request_finished, dispatch_uid="ops.request_id.forget")
def forget_request_id(sender, **kwargs):
    current_request_id.set(NO_REQUEST)


class RequestIdFilter(logging.Filter):
    """Stamp each log record with the id of the request being served ("-" outside one)."""

    def filter(self, record):
        record.request_id = current_request_id.get()
        return True
