"""Background work shared by every app: leases that expire, and a record of each task run."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class TaskRun(models.Model):
    """One run of a background task, so the console can show what ran and what failed."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        OK = "ok", _("OK")
        FAILED = "failed", _("Failed")

    name = models.CharField(max_length=100)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    detail = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        db_table = "mirror_taskrun"
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["name", "-started_at"], name="taskrun_by_name")]

    def __str__(self):
        return f"{self.name} {self.status} {self.started_at:%Y-%m-%d %H:%M:%S}"


class Lease(models.Model):
    """One consumer's hold on a unit of work (a scope's usage sync, the snapshot refresh, an automation pass).

    It expires: a consumer killed mid-task holds it only until ``expires_at``, then the
    next one takes it over (see work.leases).
    """

    name = models.CharField(max_length=200, unique=True)
    holder = models.CharField(max_length=64, help_text=_("A random id per taking: only the holder renews or releases it."))
    taken_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        db_table = "mirror_lease"

    def __str__(self):
        return f"{self.name} until {self.expires_at:%Y-%m-%d %H:%M:%S}"
