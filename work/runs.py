"""TaskRun rows: what background work ran, how it ended, for the console's sync status panel."""

import sys
from contextlib import contextmanager
from datetime import timedelta

from django.utils import timezone

from lib.stored_text import note
from django.utils.translation import gettext_noop

from work.models import TaskRun

# TaskRun rows kept for the status panel.
TASK_RUNS_KEPT = 2000


class Recorded:
    """A TaskRun row around a piece of work: running, then ok with a detail, or failed with the error."""

    def __init__(self, name):
        self.run = TaskRun.objects.create(name=name)
        self.detail = ""

    def ok(self, detail):
        self._finish(TaskRun.Status.OK, detail=detail)

    def failed(self, error):
        self._finish(TaskRun.Status.FAILED, error=error[:2000], detail=self.detail)

    def skipped(self):
        # Nothing happened (another process had the lock): no row to show.
        self.run.delete()

    def _finish(self, status, **fields):
        TaskRun.objects.filter(pk=self.run.pk).update(status=status, finished_at=timezone.now(), **fields)


@contextmanager
def tracked(name):
    """Record a run of ``name`` around the body, which may set ``detail``; a failure is recorded, then raised.

    The error is read in ``finally`` rather than caught, so every failure is recorded and
    still reaches Huey (for its retries and log) exactly as it was raised.
    """
    recorded = Recorded(name)
    try:
        yield recorded
    finally:
        error = sys.exc_info()[1]
        if error is None:
            recorded.ok(recorded.detail)
        else:
            recorded.failed(f"{error.__class__.__name__}: {error}")


def prune_task_runs():
    """Keep the newest TASK_RUNS_KEPT runs, and call a run a consumer was killed in what it is."""
    cutoff = TaskRun.objects.order_by("-started_at", "-id").values_list("started_at", flat=True)[
        TASK_RUNS_KEPT:TASK_RUNS_KEPT + 1
    ]
    if cutoff:
        TaskRun.objects.filter(started_at__lt=cutoff[0]).delete()
    # A consumer killed mid-task leaves its run "running" forever; call it what it is.
    TaskRun.objects.filter(status=TaskRun.Status.RUNNING, started_at__lt=timezone.now() - timedelta(hours=1)).update(
        status=TaskRun.Status.FAILED, error=note(gettext_noop("interrupted")), finished_at=timezone.now()
    )
