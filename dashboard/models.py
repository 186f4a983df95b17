"""Reconciliation: where it starts counting, each run, and the differences a run found."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class ReconcileOpening(models.Model):
    """Where reconciliation starts counting: derouter's figures when the console first reconciled (one row).

    Keys the console did not create (they existed before it, or were seeded) have no ledger
    line for their first budget; their budget at the opening stands in for it. The account's
    balance is compared as a movement since the opening, so money added to the account outside
    the console is explained by starting again (``manage.py reconcile --reopen``).
    """

    opened_at = models.DateTimeField()
    balance = models.DecimalField(max_digits=20, decimal_places=6)
    locked = models.DecimalField(max_digits=20, decimal_places=6)
    available = models.DecimalField(max_digits=20, decimal_places=6)
    # The Account Key's own use mirrored by then: later use is what the mirror adds after it.
    account_usage = models.DecimalField(max_digits=24, decimal_places=8)


class KeyOpening(models.Model):
    """A key's starting point for reconciliation: its budget then, and the ledger's net moves on it then."""

    sub_key_id = models.CharField(max_length=64, unique=True)
    budget = models.DecimalField(max_digits=20, decimal_places=6)
    ledger_net = models.DecimalField(max_digits=20, decimal_places=6)
    opened_at = models.DateTimeField()


class ReconcileRun(models.Model):
    """One reconciliation of the ledger, the mirror and the account against derouter."""

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        RECONCILED = "reconciled", _("Reconciled")
        DIFFERENCES = "differences", _("Differences found")
        FAILED = "failed", _("Failed")

    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    requested_by = models.CharField(max_length=150, blank=True)
    keys_checked = models.PositiveIntegerField(default=0)
    keys_waiting = models.PositiveIntegerField(default=0, help_text=_("Keys with moves not settled yet: compared later."))
    difference_count = models.PositiveIntegerField(default=0)
    notes = models.TextField(blank=True, help_text=_("What the run could not compare, and why."))
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self):
        return f"{self.started_at:%Y-%m-%d %H:%M:%S} {self.status}"


class ReconcileDifference(models.Model):
    """One difference a run found: which check, which key (blank: the account), by how much."""

    class Kind(models.TextChoices):
        LEDGER = "ledger", _("Ledger against derouter's budget")
        MIRROR = "mirror", _("Mirrored usage against derouter's spend")
        ACCOUNT = "account", _("Account balance against the moves")

    run = models.ForeignKey(ReconcileRun, on_delete=models.CASCADE, related_name="differences")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    sub_key_id = models.CharField(max_length=64, blank=True)
    key_label = models.CharField(max_length=200, blank=True)
    key_id_short = models.CharField(max_length=64, blank=True)
    # derouter's figure less the console's: positive when derouter holds more.
    amount = models.DecimalField(max_digits=20, decimal_places=6)
    detail = models.TextField()

    class Meta:
        ordering = ["id"]
