"""An export in the making or made: who may fetch it, how far it got, and where its file is."""

import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Export(models.Model):
    """A CSV file the worker writes; only who asked for it may see it.

    A customer's usage export belongs to its portal session, a ledger export to its console user.
    """

    class Kind(models.TextChoices):
        PORTAL_USAGE = "portal_usage", _("Portal usage logs")
        LEDGER = "ledger", _("Top-up ledger")

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False, help_text=_("Its id in URLs."))
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PORTAL_USAGE)
    session_key = models.CharField(max_length=64, blank=True, db_index=True,
                                   help_text=_("The portal session a usage export belongs to."))
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                             help_text=_("The console user a ledger export belongs to."))
    params = models.JSONField(default=dict, blank=True, help_text=_("The filters it was asked with."))
    time_zone = models.CharField(max_length=64, default="UTC")
    filename = models.CharField(max_length=200, help_text=_("The name the download gets."))
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    rows_done = models.PositiveIntegerField(default=0)
    rows_total = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.filename} ({self.status})"

    @property
    def path(self):
        return Path(settings.EXPORT_DIR) / f"{self.token}.csv"

    @property
    def is_stalled(self):
        """Queued or running, but nothing has moved for a while: no worker is on it any more."""
        unfinished = self.status in (self.Status.QUEUED, self.Status.RUNNING)
        return unfinished and timezone.now() - self.updated_at > timedelta(seconds=settings.EXPORT_STALL_SECONDS)

    @property
    def is_unfinished(self):
        return self.status in (self.Status.QUEUED, self.Status.RUNNING) and not self.is_stalled

    @property
    def percent(self):
        return min(100, self.rows_done * 100 // self.rows_total) if self.rows_total else 0
