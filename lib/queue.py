"""Queueing background work from a web request without failing the request when the queue is down.

With Redis as the queue, Redis down makes every enqueue raise. Work queued from a page is
either picked up again by a periodic pass (the mirror's refreshes, webhook deliveries and
alert emails: their state is in the database) or lost with a warning in the log (a customer
email); either way the page answers, and a change already made is not reported as failed.
"""

import logging

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

QUEUE_UNREACHABLE = (RedisConnectionError, RedisTimeoutError)


def enqueue_or_warn(task, *args):
    """Call a Huey task (which queues it); if the queue cannot be reached, log one line and return None."""
    try:
        return task(*args)
    except QUEUE_UNREACHABLE as error:
        logger.warning("Work queue unreachable (%s): %s was not queued.", type(error).__name__, getattr(task, "name", task))
        return None
