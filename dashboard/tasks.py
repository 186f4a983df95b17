"""The console's background work, run by the Huey consumer (`manage.py run_huey`), never by a web process."""

from huey import crontab
from huey.contrib.djhuey import db_periodic_task
from django.utils.translation import gettext_noop

from dashboard import keywrites, reconcile
from derouter.client import DerouterError
from lib.stored_text import note
from work.runs import tracked


@db_periodic_task(crontab(minute="*"))
def settle_unsettled_writes():
    """Every minute: settle pending and unknown key writes and top-ups from derouter's key list,
    and correct top-ups settled "not applied" that derouter applied late.

    With nothing unsettled it asks derouter nothing and records nothing. Otherwise the run
    is recorded (the Sync page lists it); when derouter cannot answer it is recorded as
    failed, and the next minute's run tries again.
    """
    if not keywrites.has_unsettled_writes(late_writes=True):
        return
    with tracked("dashboard.settle_unsettled_writes") as run:
        settled = keywrites.resolve_unsettled_writes(late_writes=True)
        run.detail = (note(gettext_noop("%(count)s settled"), count=len(settled)) if settled
                      else note(gettext_noop("Nothing could be settled yet.")))


@db_periodic_task(crontab(minute="17"))
def reconcile_hourly():
    """Every hour: reconcile, so the console's page shows a recent run without anyone asking."""
    try:
        reconcile.run(requested_by=note(gettext_noop("the hourly schedule")))
    except (reconcile.RunBusy, DerouterError):
        pass
