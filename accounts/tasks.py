"""Periodic housekeeping of sign-in state, on the Huey consumer (never in a web process)."""

from importlib import import_module

from django.conf import settings
from huey import crontab
from huey.contrib.djhuey import db_periodic_task

from accounts.throttle import delete_stale_counters


@db_periodic_task(crontab(minute="*/15"))
def clear_expired_sessions():
    """Delete expired sessions (portal sessions carry encrypted Client Keys) and old throttle counters.

    The same call ``manage.py clearsessions`` makes, for whichever session engine is configured.
    """
    import_module(settings.SESSION_ENGINE).SessionStore.clear_expired()
    delete_stale_counters()
