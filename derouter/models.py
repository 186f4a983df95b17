"""What the probe (manage.py check_upstream) found out about the derouter this dashboard talks to."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ProbeRun(models.Model):
    """One run of check_upstream: where, when, the balance before and after, and how it ended."""

    class Outcome(models.TextChoices):
        RUNNING = "running", _("Running")
        OK = "ok", _("Conventions found")
        FAILED = "failed", _("Failed")

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    base_url = models.CharField(max_length=500)
    simulated = models.BooleanField(default=False, help_text=_("The base URL answered as our simulator."))
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    balance_before = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    balance_after = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    probe_key_id = models.CharField(max_length=64, blank=True, help_text=_("The upstream id of the probe key."))
    left_over = models.TextField(blank=True, help_text=_("What a failed run left at derouter, said exactly."))
    report = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self):
        return f"{self.started_at:%Y-%m-%d %H:%M} {self.base_url} {self.outcome}"


class ProbeStep(models.Model):
    """One call of a probe run, recorded before it is made and settled with derouter's answer."""

    run = models.ForeignKey(ProbeRun, on_delete=models.CASCADE, related_name="steps")
    at = models.DateTimeField(auto_now_add=True)
    name = models.CharField(max_length=64)
    request = models.CharField(max_length=300, help_text=_("Method, path and body sent (never a key)."))
    status = models.IntegerField(null=True, blank=True, help_text=_("HTTP status of the answer, if one came."))
    outcome = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["at", "id"]


class StoredConventions(models.Model):
    """The conventions derouter was found to follow (one row, pk=1), written by check_upstream."""

    probed_at = models.DateTimeField()
    base_url = models.CharField(max_length=500)
    simulated = models.BooleanField(default=False)
    amounts = models.CharField(max_length=16)
    multiplier = models.CharField(max_length=16)
    multiplier_put = models.CharField(max_length=16)
    limits_settable = models.BooleanField()
    write_statuses = models.JSONField(default=dict)
    write_bodies = models.JSONField(default=dict)
    reclaim = models.CharField(max_length=16)
    run = models.ForeignKey(ProbeRun, null=True, on_delete=models.SET_NULL, related_name="+")
