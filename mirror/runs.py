"""TaskRun rows: what background work ran, how it ended, for the console's sync status panel."""

import sys
from contextlib import contextmanager

from django.utils import timezone

from mirror.models import TaskRun


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
