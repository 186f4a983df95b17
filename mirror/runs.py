"""TaskRun rows: what background work ran, how it ended, for the console's sync status panel."""

from django.utils import timezone

from mirror.models import TaskRun


class Recorded:
    """A TaskRun row around a piece of work: running, then ok with a detail, or failed with the error."""

    def __init__(self, name):
        self.run = TaskRun.objects.create(name=name)

    def ok(self, detail):
        self._finish(TaskRun.Status.OK, detail=detail)

    def failed(self, error):
        self._finish(TaskRun.Status.FAILED, error=error)

    def skipped(self):
        # Nothing happened (another process had the lock): no row to show.
        self.run.delete()

    def _finish(self, status, **fields):
        TaskRun.objects.filter(pk=self.run.pk).update(status=status, finished_at=timezone.now(), **fields)
