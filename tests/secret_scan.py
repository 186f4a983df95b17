"""Fail any response or log line of the test suite that carries the Account Key."""

import logging

from django.conf import settings


class SecretLeak(AssertionError):
    """The Account Key showed up where it must never be."""


def find_account_key(text):
    key = settings.DEROUTER_ACCOUNT_KEY
    return bool(key) and key in text


class SecretScanMiddleware:
    """Check every response's body, headers and cookies for the Account Key."""

    scanned = 0

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        SecretScanMiddleware.scanned += 1
        headers = "\n".join(f"{name}: {value}" for name, value in response.items())
        cookies = response.cookies.output()
        if find_account_key(headers) or find_account_key(cookies):
            raise SecretLeak(f"the Account Key is in a header or cookie of {request.path}")
        if response.streaming:
            response.streaming_content = self._scan_stream(request.path, response.streaming_content)
        elif find_account_key(response.content.decode("utf-8", "replace")):
            raise SecretLeak(f"the Account Key is in the body of {request.path}")
        return response

    @staticmethod
    def _scan_stream(path, chunks):
        for chunk in chunks:
            text = chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else str(chunk)
            if find_account_key(text):
                raise SecretLeak(f"the Account Key is in the streamed body of {path}")
            yield chunk


class SecretScanLogHandler(logging.Handler):
    """Collect log records that mention the Account Key."""

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.leaks = []

    def emit(self, record):
        text = record.getMessage()
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        if find_account_key(text):
            self.leaks.append(f"{record.name}: {text[:200]}")
