from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy


class Role(models.TextChoices):
    OWNER = "owner", gettext_lazy("Owner")
    STAFF = "staff", gettext_lazy("Staff")


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
        help_text=gettext_lazy("USD a staff member may top up per day (UTC). Empty: the STAFF_DAILY_TOPUP_CAP setting."),
    )
    can_see_margins = models.BooleanField(
        default=False,
        help_text=gettext_lazy("Staff: may see real costs and margins in analytics. Owners always do."),
    )
    language = models.CharField(
        max_length=10, blank=True, choices=settings.LANGUAGES, help_text=gettext_lazy("Empty: the browser's language.")
    )

    def __str__(self):
        return f"{self.user} ({self.get_role_display()})"

    @property
    def effective_topup_cap(self):
        """The staff member's daily cap; None means unlimited (owners)."""
        if self.role == Role.OWNER:
            return None
        return self.daily_topup_cap if self.daily_topup_cap is not None else settings.STAFF_DAILY_TOPUP_CAP


class ConsoleSettings(models.Model):
    """Console-wide choices owners make on the users page; one row."""

    require_two_factor = models.BooleanField(
        default=False, help_text=gettext_lazy("Every console user must sign in with a second factor.")
    )

    @classmethod
    def load(cls):
        settings_row, _ = cls.objects.get_or_create(pk=1)
        return settings_row


class SessionEpoch(models.Model):
    """A per-user number stored in each session at sign-in; raising it ends every open session."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="session_epoch")
    epoch = models.PositiveIntegerField(default=0)


class Invitation(models.Model):
    """A one-time invitation to the console; the link carries a signed id and this row's nonce."""

    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.STAFF)
    daily_topup_cap = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    nonce = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.email} ({self.get_role_display()})"


class ThrottleCounter(models.Model):
    """Attempts of one subject (a hashed username, address or pair) in its current window.

    A row, not the cache: it is counted under a row lock, so parallel requests
    cannot overshoot, and its window is what it says on every cache backend.
    """

    scope = models.CharField(max_length=40)
    subject = models.CharField(max_length=64, help_text=gettext_lazy("SHA-256 of the subject, so no username or address is stored."))
    window_started_at = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "subject"], name="throttle_one_row_per_subject")]
        indexes = [models.Index(fields=["window_started_at"], name="throttle_by_start")]


class KeyLanguage(models.Model):
    """The language a Client Key's customer chose in the portal: its pages, emails and statements use it."""

    key_id = models.CharField(max_length=64, unique=True, help_text=gettext_lazy("The Client Key's upstream id."))
    language = models.CharField(max_length=10, choices=settings.LANGUAGES)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.key_id}: {self.language}"

    @classmethod
    def get_for_key(cls, key_id):
        """The key's language, or "" when its customer never chose one."""
        return cls.objects.filter(key_id=key_id).values_list("language", flat=True).first() or ""

    @classmethod
    def remember(cls, key_id, language):
        cls.objects.update_or_create(key_id=key_id, defaults={"language": language})
