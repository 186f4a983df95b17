from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    STAFF = "staff", "Staff"


class ConsoleProfile(models.Model):
    """A console user's role and, for staff, their daily top-up cap."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="console_profile")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.STAFF)
    daily_topup_cap = models.DecimalField(
        max_digits=14,
        decimal_places=4,
        null=True,
        blank=True,
        validators=[MinValueValidator(Decimal("0"))],
        help_text="USD a staff member may top up per day (UTC). Empty: the STAFF_DAILY_TOPUP_CAP setting.",
    )
    can_see_margins = models.BooleanField(
        default=False,
        help_text="Staff: may see real costs and margins in analytics. Owners always do.",
    )

    def __str__(self):
        return f"{self.user} ({self.get_role_display()})"

    @property
    def effective_topup_cap(self):
        """The staff member's daily cap; None means unlimited (owners)."""
        if self.role == Role.OWNER:
            return None
        return self.daily_topup_cap if self.daily_topup_cap is not None else settings.STAFF_DAILY_TOPUP_CAP
