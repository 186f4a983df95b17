"""A Redis cache that degrades to "nothing cached" while Redis is unreachable.

Everything this project keeps in the cache is also in the database (branding, the
first-sync request marker, cached lists), so a cache that cannot be reached is a cache
that misses: pages keep serving from the database instead of answering 500. After a
failure the cache is not asked again for ``RETRY_AFTER_SECONDS``, so a Redis that is down
costs one connection attempt per process per interval, not one per cache call, and the
log says so once per interval, not once per request.
"""

import logging
import time

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


class ForgivingRedisCache(RedisCache):
    """Django's Redis cache; while Redis is unreachable, reads miss and writes are dropped."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._skip_until = 0.0

    def _call(self, method, fallback, *args, **kwargs):
        if time.monotonic() < self._skip_until:
            return fallback
        try:
            return method(*args, **kwargs)
        except UNREACHABLE as error:
            self._skip_until = time.monotonic() + RETRY_AFTER_SECONDS
            logger.warning(
                "Cache unreachable (%s); serving from the database for the next %s s.",
                type(error).__name__,
                RETRY_AFTER_SECONDS,
            )
            return fallback

    def get(self, key, default=None, version=None):
        return self._call(super().get, default, key, default, version)

    def get_many(self, keys, version=None):
        return self._call(super().get_many, {}, keys, version)

    def has_key(self, key, version=None):
        return self._call(super().has_key, False, key, version)

    def add(self, key, value, timeout=None, version=None):
        return self._call(super().add, False, key, value, timeout, version)

    def set(self, key, value, timeout=None, version=None):
        return self._call(super().set, None, key, value, timeout, version)

    def set_many(self, data, timeout=None, version=None):
        return self._call(super().set_many, list(data), data, timeout, version)

    def touch(self, key, timeout=None, version=None):
        return self._call(super().touch, False, key, timeout, version)

    def delete(self, key, version=None):
        return self._call(super().delete, False, key, version)

    def delete_many(self, keys, version=None):
        return self._call(super().delete_many, None, keys, version)

    def incr(self, key, delta=1, version=None):
        # A counter that cannot be counted is not there: the same answer as a missing key.
        result = self._call(super().incr, None, key, delta, version)
        if result is None:
            raise ValueError(f"Key '{key}' not found")
        return result

    def clear(self):
        return self._call(super().clear, False)
