"""Task visibility: each background run leaves a mirror.TaskRun row with how it ended."""

from contextlib import contextmanager

from django.utils import timezone

from mirror.models import TaskRun


@contextmanager
def tracked(name):
    """Record a run of ``name``; the body may set ``run.detail``. A failure is recorded, then raised."""
    run = TaskRun.objects.create(name=name)
    try:
        yield run
    except Exception as error:
        # Recorded for the console's task list, then raised again for Huey's retries and log.
        run.status = TaskRun.Status.FAILED
        run.error = f"{error.__class__.__name__}: {error}"[:2000]
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "error", "finished_at", "detail"])
        raise
    run.status = TaskRun.Status.OK
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at", "detail"])
