"""The mirror's schedule, run by Huey consumers (`manage.py run_huey`); the tasks live beside their services.

Every MIRROR_REFRESH_SECONDS the key snapshot is refreshed, then one usage pass syncs
every scope whose usage may have moved, concurrently (mirror.passes: a bounded number of
requests in flight, one pass at a time across consumers, each scope under its own lease).
A scope derouter fails is left for the next pass, every page already synced kept; a
failed snapshot refresh fails the task, and Huey retries it with a growing delay.
"""

import math

from django.conf import settings
from huey.contrib.djhuey import db_periodic_task

from mirror import passes


def _every_refresh_period(moment):
    """Whether the once-a-minute scheduler should start this minute's refreshes."""
    period = settings.MIRROR_REFRESH_SECONDS
    if period <= 0:
        return False
    if period < 60:
        return True
    minutes = period // 60
    return (moment.hour * 60 + moment.minute) % minutes == 0


@db_periodic_task(_every_refresh_period)
def schedule_refreshes():
    """Huey's scheduler wakes once a minute; periods under a minute are spread over it."""
    period = settings.MIRROR_REFRESH_SECONDS
    passes.refresh_mirror()
    if period < 60:
        for step in range(1, math.ceil(60 / period)):
            passes.refresh_mirror.schedule(delay=step * period)
