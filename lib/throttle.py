"""Failed sign-in counting in the shared cache, so the limit holds across workers."""

import time
from dataclasses import dataclass

from django.core.cache import cache


@dataclass(frozen=True)
class Throttle:
    """At most ``limit`` failures per ``window`` seconds for each scope and subject."""

    scope: str
    limit: int
    window: int

    def _keys(self, subject):
        base = f"throttle:{self.scope}:{subject}"
        return f"{base}:count", f"{base}:started"

    def retry_after(self, subject):
        """Seconds until the subject may try again, or 0 when it may try now."""
        count_key, started_key = self._keys(subject)
        values = cache.get_many([count_key, started_key])
        if values.get(count_key, 0) < self.limit:
            return 0
        started = values.get(started_key, time.time())
        return max(1, int(started + self.window - time.time()) + 1)

    def record_failure(self, subject):
        count_key, started_key = self._keys(subject)
        cache.add(started_key, time.time(), self.window)
        cache.add(count_key, 0, self.window)
        try:
            cache.incr(count_key)
        except ValueError:
            # The window expired between add() and incr(): start a new one.
            cache.set(count_key, 1, self.window)

    def reset(self, subject):
        cache.delete_many(self._keys(subject))


def client_address(request):
    """The address the request came from (set REMOTE_ADDR correctly behind a proxy)."""
    return request.META.get("REMOTE_ADDR", "unknown")
