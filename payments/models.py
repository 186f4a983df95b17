"""Money customers bring in themselves: redemption codes (and, below, card payments).

A code is stored only as the SHA-256 of its text: the text is shown once, when its batch
is made. Its state moves unused -> redeeming (claimed by one key, the top-up under way)
-> redeemed, or back to unused when derouter refused the top-up; an unused code can be
revoked. "Expired" is not stored: an unused code of a batch past its expiry is expired.
"""

from decimal import ROUND_DOWN, Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy

# The ledger keeps four decimals.
LEDGER_PLACES = Decimal("0.0001")


class MoneyInSettings(models.Model):
    """The owners' choices for money in (one row)."""

    staff_may_manage_codes = models.BooleanField(
        default=False, help_text=gettext_lazy("Staff may create and revoke redemption codes, not only owners.")
    )

    @classmethod
    def load(cls):
        settings_row, _ = cls.objects.get_or_create(pk=1)
        return settings_row


class CodeBatch(models.Model):
    """Codes made together: same worth, expiry and note."""

    class Unit(models.TextChoices):
        CUSTOMER = "customer", gettext_lazy("The customer's units (converted with the key's markup)")
        USD = "usd", gettext_lazy("Real money (USD)")

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_by_name = models.CharField(max_length=150)
    note = models.CharField(max_length=200, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=4)
    unit = models.CharField(max_length=16, choices=Unit.choices, default=Unit.CUSTOMER)
    count = models.PositiveIntegerField()
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"Batch #{self.pk} ({self.count} × {self.amount} {self.unit})"

    @property
    def is_expired(self):
        return self.expires_at is not None and self.expires_at <= timezone.now()

    def real_amount(self, display_multiplier):
        """USD a code of this batch adds to a key with this markup (rounded down, never more than its worth)."""
        if self.unit == self.Unit.USD:
            return self.amount
        return (self.amount / display_multiplier).quantize(LEDGER_PLACES, rounding=ROUND_DOWN)


class RedemptionCode(models.Model):
    class State(models.TextChoices):
        UNUSED = "unused", gettext_lazy("Unused")
        REDEEMING = "redeeming", gettext_lazy("Being redeemed")
        REDEEMED = "redeemed", gettext_lazy("Redeemed")
        REVOKED = "revoked", gettext_lazy("Revoked")

    # What the console shows for an unused code past its batch's expiry.
    EXPIRED = "expired"

    batch = models.ForeignKey(CodeBatch, on_delete=models.PROTECT, related_name="codes")
    digest = models.CharField(max_length=64, unique=True, help_text=gettext_lazy("SHA-256 of the code's text."))
    hint = models.CharField(max_length=8, help_text=gettext_lazy("The code's last characters, to tell codes apart."))
    state = models.CharField(max_length=16, choices=State.choices, default=State.UNUSED)
    # Each redemption attempt has its own top-up token; a refused attempt gives the code back with the next one.
    attempts = models.PositiveIntegerField(default=0)
    sub_key_id = models.CharField(max_length=64, blank=True)
    key_label = models.CharField(max_length=200, blank=True)
    key_id_short = models.CharField(max_length=64, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    redeemed_at = models.DateTimeField(null=True, blank=True)
    amount_usd = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    topup = models.ForeignKey("ledger.TopUp", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by_name = models.CharField(max_length=150, blank=True)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["state", "claimed_at"], name="code_by_state"),
            models.Index(fields=["sub_key_id", "-redeemed_at"], name="code_by_key"),
        ]

    def __str__(self):
        return f"…{self.hint} ({self.state})"

    @property
    def shown_state(self):
        if self.state == self.State.UNUSED and self.batch.is_expired:
            return self.EXPIRED
        return self.state

    @property
    def shown_state_label(self):
        if self.shown_state == self.EXPIRED:
            return "Expired"
        return self.get_state_display()
